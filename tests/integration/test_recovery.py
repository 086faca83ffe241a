"""Crash recovery: a worker process SIGKILLed mid-step; its saga is taken over by another worker."""

from __future__ import annotations

import time

import pytest

from tests.integration.support import (
    calls,
    define,
    events,
    index_of,
    kill_owner,
    of_type,
    one,
    owner_pid,
    start,
    step,
    wait_for,
    wait_ready,
)


def test_killed_worker_saga_is_finished_by_another_without_rerunning_completed_steps(client, workers):
    define(client, "crash", [step("a"), step("b"), step("c")], consistency="EXACTLY_ONCE")
    pool = workers(2)
    wait_ready(client, pool)

    wid = start(client, "crash", {"plan": {"c": {"sleep": 2, "sleep_calls": 1}}})
    wait_for(lambda: calls(client, wid, step_id="c"), 10, "step c to start")
    killed = kill_owner(client, pool, wid)
    killed_at = time.time()

    snap = client.wait(wid, 15)

    assert snap["status"] == "COMPLETED"
    survivor = owner_pid(client, wid)
    assert survivor in pool.pids and survivor != killed
    evts = events(client, wid)
    resumed = of_type(evts, "StepStarted", "c")
    assert [e["recovered"] for e in resumed] == [False, True]
    assert resumed[1]["at"] - killed_at < 4.0, "the saga was not taken over within a few seconds"
    assert resumed[1]["attempt"] == resumed[0]["attempt"] == 1
    # Completed steps ran once; the interrupted one re-ran with the same idempotency key.
    assert [(c.step_id, c.key) for c in calls(client, wid)] == [
        ("a", f"{wid}:a"),
        ("b", f"{wid}:b"),
        ("c", f"{wid}:c"),
        ("c", f"{wid}:c"),
    ]
    assert calls(client, wid, phase="compensation") == []
    assert client.validate_consistency(wid).consistent


def test_interrupted_non_idempotent_step_is_not_rerun_but_compensated(client, workers):
    define(client, "crash-once", [step("a"), step("charge", idempotent=False), step("c")])
    pool = workers(2)
    wait_ready(client, pool)

    wid = start(client, "crash-once", {"plan": {"charge": {"sleep": 2, "sleep_calls": 1}}})
    wait_for(lambda: calls(client, wid, step_id="charge"), 10, "step charge to start")
    kill_owner(client, pool, wid)

    snap = client.wait(wid, 15)

    assert snap["status"] == "COMPENSATED"
    assert len(calls(client, wid, step_id="charge")) == 1, "a non-idempotent step was re-run"
    assert calls(client, wid, step_id="c") == []
    evts = events(client, wid)
    failed = one(evts, "StepFailed", "charge")
    assert failed["error_type"] == "StepInterrupted"
    assert failed["uncertain"] is True
    assert failed["will_retry"] is False
    assert len(of_type(evts, "StepStarted", "charge")) == 1
    assert index_of(evts, "StepFailed", "charge") < index_of(evts, "WorkflowFailed")
    # Its effect is unknown, so it is compensated (first: it started last), then a.
    assert one(evts, "CompensationStarted")["steps_to_compensate"] == ["charge", "a"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["charge", "a"]
    assert client.validate_consistency(wid).consistent


def test_compensation_interrupted_by_a_crash_is_finished_by_another_worker(client, workers):
    define(client, "crash-undo", [step("a"), step("b"), step("c")], consistency="EXACTLY_ONCE")
    pool = workers(2)
    wait_ready(client, pool)

    # The forward phase takes over 1.2 s, so the compensation budget (2x) covers the takeover.
    plan = {"a": {"sleep": 1.2}, "b": {"undo_sleep": 2, "undo_sleep_calls": 1}, "c": {"fail": "final"}}
    wid = start(client, "crash-undo", {"plan": plan})
    wait_for(lambda: calls(client, wid, phase="compensation", step_id="b"), 10, "the undo of b to start")
    kill_owner(client, pool, wid)

    snap = client.wait(wid, 15)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False, snap["compensation_timed_out"]
    undo = calls(client, wid, phase="compensation")
    assert [(c.step_id, c.key) for c in undo] == [
        ("b", f"{wid}:b:compensate"),
        ("b", f"{wid}:b:compensate"),
        ("a", f"{wid}:a:compensate"),
    ]
    assert [e["step_id"] for e in of_type(events(client, wid), "StepCompensated")] == ["b", "a"]
    assert [c.step_id for c in calls(client, wid)] == ["a", "b", "c"]
    assert client.validate_consistency(wid).consistent


def test_a_worker_dying_mid_compensation_of_a_quick_saga_does_not_make_it_need_attention(client, workers):
    """The compensation budget is 2x the forward time but at least 1 s plus one lease (the time another
    worker needs to take over), so a crash alone does not flag a saga whose forward phase was quick."""
    define(client, "quick-crash-undo", [step("a"), step("b"), step("c")], consistency="EXACTLY_ONCE")
    pool = workers(2)
    wait_ready(client, pool)
    plan = {"b": {"undo_sleep": 3, "undo_sleep_calls": 1}, "c": {"fail": "final"}}
    wid = start(client, "quick-crash-undo", {"plan": plan})
    wait_for(lambda: calls(client, wid, phase="compensation", step_id="b"), 10, "the undo of b to start")
    kill_owner(client, pool, wid)

    snap = client.wait(wid, 15)

    assert snap["status"] == "COMPENSATED"
    times = snap["time_constraints"]
    forward = times["compensation_started_at"] - times["started_at"]
    assert forward < 0.5, "the forward phase was meant to be quick"
    budget = times["compensation_deadline"] - times["compensation_started_at"]
    assert budget == pytest.approx(1.0 + client.settings.lease_seconds)
    assert "CompensationTimeout" not in [e["type"] for e in events(client, wid)]
    assert snap["requires_attention"] is False
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["b", "b", "a"]
