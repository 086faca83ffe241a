"""WorkflowInstanceRepository against the real server: save, lazy snapshots, conflicts."""

from __future__ import annotations

import time

import pytest

from engine.domain import events as ev
from engine.domain.instance import WorkflowInstance
from engine.domain.status import WorkflowStatus
from engine.errors import ConcurrencyConflict
from tests.integration.support import define, step


def created(wid: str, steps: list[str]) -> ev.WorkflowCreated:
    plan = [
        {"id": s, "depends_on": [p] if p else [], "target": "tests.handlers:step", "step_type": "python",
         "compensation_type": "UNDO", "idempotent": True}
        for s, p in zip(steps, [None, *steps[:-1]], strict=True)
    ]  # fmt: skip
    return ev.WorkflowCreated(wid, time.time(), "repo", 1, "AT_LEAST_ONCE", {}, wid, time.time() + 60, plan)


def test_save_creates_then_appends_and_refuses_a_stale_copy(client):
    define(client, "repo", [step("a"), step("b")])
    repo = client.repo
    inst = WorkflowInstance.create(created("w-save-1", ["a", "b"]))
    repo.save(inst, int(time.time() * 1000))
    assert repo.find_by_id("w-save-1").to_dict() == inst.to_dict()

    mine, other = repo.load("w-save-1").instance, repo.load("w-save-1").instance
    mine.record(ev.WorkflowStarted("w-save-1", time.time(), "repo", "w-save-1"))
    repo.save(mine, int(time.time() * 1000))
    assert repo.status_of("w-save-1").value == "RUNNING"
    assert [w.workflow_id for w in repo.find_by_status(mine.status)] == ["w-save-1"]

    other.record(ev.WorkflowCancelled("w-save-1", time.time(), "test", "stale"))
    with pytest.raises(ConcurrencyConflict):
        repo.save(other, int(time.time() * 1000))
    assert repo.status_of("w-save-1").value == "RUNNING"
    assert client.validate_consistency("w-save-1").consistent


def test_reads_replay_the_events_after_the_last_snapshot(client):
    """A worker writes the snapshot lazily; what readers see is still the latest state."""
    define(client, "repo", [step("a"), step("b")])
    repo = client.repo
    wid = "w-lazy-1"
    inst = WorkflowInstance.create(created(wid, ["a", "b"]))
    repo.save(inst, int(time.time() * 1000))
    inst.record(ev.WorkflowStarted(wid, time.time(), "repo", wid))
    inst.record(ev.StepStarted(wid, time.time(), "a", 1, f"{wid}:a", {}))
    events = inst.take_pending()
    # As a worker does between waits: append the events without rewriting the snapshot.
    repo.commit(
        inst,
        events,
        expected_version=1,
        old_status=WorkflowStatus.CREATED,
        now_ms=int(time.time() * 1000),
        write_snapshot=False,
    )
    raw, snapshot_version = repo.stored_snapshot(wid)
    assert snapshot_version == 1 and raw["status"] == "CREATED"  # the written snapshot is the old one
    loaded = repo.load(wid)
    assert loaded.version == 3 and loaded.snapshot_version == 1
    assert loaded.instance.to_dict() == inst.to_dict()  # the reader replayed the two events
    assert client.get(wid)["steps"][0]["status"] == "RUNNING"
    assert client.validate_consistency(wid).consistent
