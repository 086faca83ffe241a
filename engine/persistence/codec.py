"""Domain <-> Redis encoding (JSON via orjson)."""

from __future__ import annotations

from typing import Any

import orjson

from engine.domain.events import DomainEvent, event_from_dict
from engine.domain.instance import WorkflowInstance

SCHEMA_VERSION = 1


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)


def encode_instance(inst: WorkflowInstance) -> str:
    return dumps(inst.to_dict())


def decode_instance(raw: str | bytes) -> WorkflowInstance:
    return WorkflowInstance.from_dict(orjson.loads(raw))


def encode_event(event: DomainEvent) -> str:
    return dumps(event.to_dict())


def decode_event(raw: str | bytes) -> DomainEvent:
    return event_from_dict(orjson.loads(raw))


def is_json_value(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True
