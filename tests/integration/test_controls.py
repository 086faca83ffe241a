"""Operator controls on real workers: pause, resume, cancel in every state, refusals."""

from __future__ import annotations

import pytest

from engine.errors import IllegalTransition
from tests.integration.support import (
    calls,
    define,
    events,
    index_of,
    ledger,
    let_go,
    of_type,
    one,
    start,
    step,
    types,
    wait_for,
    wait_ready,
)


def step_status(client, wid: str, step_id: str) -> str:
    return next(s["status"] for s in client.get(wid)["steps"] if s["step_id"] == step_id)


def test_pause_lets_the_running_step_finish_and_starts_no_new_one(client, workers):
    define(client, "pausable", [step("a"), step("b"), step("c")])
    workers(1)

    wid = start(client, "pausable", {"plan": {"a": {"sleep": 0.6}}})
    wait_for(lambda: calls(client, wid, step_id="a"), 10, "step a to start")
    assert client.pause(wid, by="op")["status"] == "PAUSED"

    wait_for(lambda: step_status(client, wid, "a") == "COMPLETED", 5, "the in-flight step to finish")
    wait_for(lambda: let_go(client, wid), 5, "the worker to let the paused saga go")
    assert client.status(wid) == "PAUSED"
    assert step_status(client, wid, "b") == "PENDING"
    assert calls(client, wid, step_id="b") == []
    assert of_type(events(client, wid), "StepStarted", "b") == []

    assert client.resume(wid, by="op")["status"] == "RUNNING"
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPLETED"
    evts = events(client, wid)
    assert index_of(evts, "WorkflowPaused") < index_of(evts, "StepExecuted", "a")
    resumed = one(evts, "WorkflowResumed")
    assert one(evts, "StepStarted", "b")["at"] >= resumed["at"]
    assert one(evts, "StepExecuted", "a")["at"] <= resumed["at"]
    assert [c.step_id for c in calls(client, wid)] == ["a", "b", "c"]
    assert client.validate_consistency(wid).consistent


def test_cancel_created_workflow_never_runs(client, workers):
    define(client, "cancel-created", [step("a"), step("b")])

    wid = start(client, "cancel-created")
    assert client.status(wid) == "CREATED"
    assert client.cancel(wid, by="op")["status"] == "CANCELLED"
    assert types(events(client, wid)) == ["WorkflowCreated", "WorkflowCancelled"]

    pool = workers(1)
    wait_ready(client, pool)
    assert let_go(client, wid)
    # A saga started after it runs to its end: the workers have looked at the schedule since.
    assert client.wait(start(client, "cancel-created"), 20)["status"] == "COMPLETED"

    assert client.status(wid) == "CANCELLED"
    assert ledger(client, wid) == []
    assert types(events(client, wid)) == ["WorkflowCreated", "WorkflowCancelled"]


def test_cancel_running_compensates_including_the_step_in_flight(client, workers):
    define(client, "cancel-running", [step("a"), step("b"), step("c")])
    workers(1)

    wid = start(client, "cancel-running", {"plan": {"b": {"sleep": 0.8}}})
    wait_for(lambda: calls(client, wid, step_id="b"), 10, "step b to start")
    assert client.cancel(wid, by="op")["status"] == "COMPENSATING"
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["reason"] == "cancelled"
    assert snap["compensation_reason"] == "cancelled"
    assert snap["requires_attention"] is False
    evts = events(client, wid)
    assert one(evts, "WorkflowCompensated")["reason"] == "cancelled"
    # The in-flight step's result arrived after the cancel, was recorded, and is undone first.
    assert index_of(evts, "WorkflowCancelled") < index_of(evts, "StepExecuted", "b")
    assert [e["step_id"] for e in of_type(evts, "StepCompensated")] == ["b", "a"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["b", "a"]
    assert calls(client, wid, step_id="c") == []
    assert of_type(evts, "StepStarted", "c") == []
    assert client.validate_consistency(wid).consistent


def test_cancel_paused_compensates(client, workers):
    define(client, "cancel-paused", [step("a"), step("b")])
    workers(1)

    wid = start(client, "cancel-paused", {"plan": {"a": {"sleep": 0.3}}})
    wait_for(lambda: calls(client, wid, step_id="a"), 10, "step a to start")
    client.pause(wid)
    wait_for(lambda: step_status(client, wid, "a") == "COMPLETED", 5, "the in-flight step to finish")
    assert client.status(wid) == "PAUSED"

    assert client.cancel(wid, by="op")["status"] == "COMPENSATING"
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["compensation_reason"] == "cancelled"
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["a"]
    assert calls(client, wid, step_id="b") == []
    evts = events(client, wid)
    assert index_of(evts, "WorkflowPaused") < index_of(evts, "WorkflowCancelled") < index_of(evts, "StepCompensated")


def test_controls_on_finished_workflows_are_refused(client, workers):
    define(client, "finished", [step("a"), step("b")])
    cancelled = start(client, "finished")
    client.cancel(cancelled)
    workers(1)
    completed = start(client, "finished")
    compensated = start(client, "finished", {"plan": {"b": {"fail": "final"}}})
    client.wait(completed, 20)
    client.wait(compensated, 20)

    for wid, status in [(completed, "COMPLETED"), (compensated, "COMPENSATED"), (cancelled, "CANCELLED")]:
        before = client.get(wid)
        assert before["status"] == status
        with pytest.raises(IllegalTransition, match=f"{status} -> CANCELLED"):
            client.cancel(wid)
        with pytest.raises(IllegalTransition, match=f"{status} -> PAUSED"):
            client.pause(wid)
        with pytest.raises(IllegalTransition, match=f"{status} -> RUNNING"):
            client.resume(wid)
        assert client.get(wid) == before, f"a refused control changed {status} workflow"
        assert len(events(client, wid)) == before["version"]
    with pytest.raises(IllegalTransition):
        client.retry_compensation(completed)
    assert client.get(completed)["status"] == "COMPLETED"


def test_the_deadline_runs_while_paused(client, workers):
    define(client, "paused-too-long", [step("a"), step("b")], timeout="1s")
    pool = workers(1)
    wait_ready(client, pool)

    wid = start(client, "paused-too-long", {"plan": {"a": {"sleep": 0.3}}})
    wait_for(lambda: calls(client, wid, step_id="a"), 10, "step a to start")
    client.pause(wid)
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["compensation_reason"] == "timeout"
    evts = events(client, wid)
    assert of_type(evts, "WorkflowResumed") == []
    assert index_of(evts, "WorkflowPaused") < index_of(evts, "WorkflowTimeout") < index_of(evts, "CompensationStarted")
    assert 1.0 <= one(evts, "WorkflowTimeout")["at"] - evts[0]["at"] < 2.0
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["a"]
    assert calls(client, wid, step_id="b") == []
