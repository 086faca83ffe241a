"""Domain <-> Redis encoding (JSON via orjson)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from engine.domain.events import DomainEvent, event_from_dict
from engine.domain.instance import WorkflowInstance

SCHEMA_VERSION = 1


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)


def encode_instance(inst: WorkflowInstance) -> bytes:
    return orjson.dumps(inst.snapshot())


def decode_instance(raw: str | bytes, tail: Sequence[Sequence[str]] = ()) -> WorkflowInstance:
    """An instance from its snapshot and the stream entries committed after it (newest first, each
    a flat ``[field, value, ...]`` list as XREVRANGE returns it)."""
    inst = WorkflowInstance.from_dict(orjson.loads(raw))
    for fields in reversed(tail):
        entry = dict(zip(fields[::2], fields[1::2], strict=True))
        inst.apply(decode_event(entry["t"], entry["d"]))
    return inst


def encode_event(event: DomainEvent) -> bytes:
    """The event's fields; its type travels beside it (stream field ``t``)."""
    return orjson.dumps(event)


def decode_event(event_type: str, raw: str | bytes) -> DomainEvent:
    return event_from_dict({**orjson.loads(raw), "type": event_type})


def is_json_value(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True
