"""The seed's validateSagaConsistency: replay a workflow's events and compare with what is stored."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.instance import WorkflowInstance
from engine.persistence.workflow_repository import WorkflowRepository


@dataclass(frozen=True)
class ConsistencyReport:
    workflow_id: str
    consistent: bool
    stored_version: int
    replayed_version: int
    versions_sequential: bool
    differences: list[str]


def validate_saga_consistency(workflows: WorkflowRepository, wid: str) -> ConsistencyReport:
    """The last written snapshot must equal the replay of the events up to its version, the stored
    state (snapshot plus the events after it) the replay of all of them, and the event versions must
    run 1, 2, 3... without a gap."""
    stored = workflows.load(wid)
    events = [e for _, _, e in workflows.events(wid)]
    versions = workflows.event_versions(wid)
    raw_snapshot, snapshot_version = workflows.stored_snapshot(wid)
    replayed = WorkflowInstance.replay(events)
    prefix = WorkflowInstance.replay(events[:snapshot_version]).to_dict()
    written = WorkflowInstance.from_dict(raw_snapshot).to_dict()
    diffs = _diff("stored", stored.instance.to_dict(), "replayed", replayed.to_dict())
    diffs += _diff(f"snapshot v{snapshot_version}", written, "replayed prefix", prefix)
    sequential = versions == list(range(1, len(versions) + 1))
    return ConsistencyReport(
        wid,
        not diffs and sequential and stored.version == replayed.version,
        stored.version,
        replayed.version,
        sequential,
        diffs,
    )


def _diff(a_name: str, a: dict, b_name: str, b: dict) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a_name} {a.get(k)!r} != {b_name} {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
