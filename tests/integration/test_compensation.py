"""Backward recovery on real workers: each compensation type, best effort, the operator's retry,
workflow timeouts and the compensation deadline."""

from __future__ import annotations

from tests.integration.support import (
    calls,
    define,
    events,
    index_of,
    ledger,
    of_type,
    one,
    start,
    step,
    types,
    wait_ready,
)

RETRY_UNDO = {"type": "RETRY", "action": "tests.handlers:undo", "max_retries": 3, "retry_delay": "50ms"}
ALTERNATIVE = {"type": "ALTERNATIVE", "action": "tests.handlers:undo", "alternative": "tests.handlers:alternative"}
MANUAL = {"type": "MANUAL", "note": "call the carrier to recall the parcel"}


def step_of(snap: dict, step_id: str) -> dict:
    return next(s for s in snap["steps"] if s["step_id"] == step_id)


def test_undo_is_called_once_per_completed_step(client, workers):
    define(client, "undo-once", [step("a"), step("b"), step("c")])
    workers(1)

    wid = start(client, "undo-once", {"plan": {"c": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    undone = calls(client, wid, phase="compensation")
    assert [(c.step_id, c.attempt) for c in undone] == [("b", 1), ("a", 1)]
    assert [(e["step_id"], e["via"]) for e in of_type(events(client, wid), "StepCompensated")] == [
        ("b", "action"),
        ("a", "action"),
    ]
    # The failed step itself had no effect to undo.
    assert step_of(snap, "c")["status"] == "FAILED"


def test_retry_compensation_retries_the_undo_until_it_succeeds(client, workers):
    define(client, "undo-retry", [step("a", compensation=RETRY_UNDO), step("b")])
    workers(1)

    wid = start(client, "undo-retry", {"plan": {"a": {"undo_fail_times": 2}, "b": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    assert snap["failed_compensations"] == []
    assert [c.attempt for c in calls(client, wid, phase="compensation", step_id="a")] == [1, 2, 3]
    evts = events(client, wid)
    failures = of_type(evts, "CompensationFailed", "a")
    assert [(f["attempt"], f["will_retry"]) for f in failures] == [(1, True), (2, True)]
    started = of_type(evts, "CompensationStepStarted", "a")
    for f, nxt in zip(failures, started[1:], strict=True):
        assert nxt["at"] >= f["next_attempt_at"]
    assert one(evts, "StepCompensated", "a")["attempt"] == 3
    assert step_of(snap, "a")["status"] == "COMPENSATED"


def test_alternative_compensation_runs_when_the_action_fails(client, workers):
    define(client, "undo-alternative", [step("a", compensation=ALTERNATIVE), step("b")])
    workers(1)

    wid = start(client, "undo-alternative", {"plan": {"a": {"undo_fail": "always"}, "b": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    assert [(c.phase, c.step_id) for c in ledger(client, wid) if c.phase != "forward"] == [
        ("compensation", "a"),
        ("alternative", "a"),
    ]
    evts = events(client, wid)
    assert one(evts, "CompensationFailed", "a")["will_retry"] is True
    assert one(evts, "StepCompensated", "a")["via"] == "alternative"


def test_manual_compensation_is_parked_until_an_operator_resolves_it(client, workers):
    define(client, "undo-manual", [step("a"), step("ship", compensation=MANUAL), step("c")])
    workers(1)

    wid = start(client, "undo-manual", {"plan": {"c": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is True
    assert snap["failed_compensations"] == ["ship"]
    assert step_of(snap, "ship")["status"] == "COMPENSATION_PARKED"
    parked = one(events(client, wid), "CompensationParked", "ship")
    assert parked["note"] == MANUAL["note"]
    # The rest still ran, and the parked one called no handler.
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["a"]
    assert [i["workflow_id"] for i in client.list(requires_attention=True).items] == [wid]

    client.retry_compensation(wid, by="operator")
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    assert snap["failed_compensations"] == []
    assert step_of(snap, "ship")["status"] == "COMPENSATED"
    evts = events(client, wid)
    assert one(evts, "CompensationRetryRequested")["steps"] == ["ship"]
    assert one(evts, "StepCompensated", "ship")["via"] == "operator"
    assert types(evts)[-1] == "WorkflowCompensated"
    assert client.list(requires_attention=True).items == []
    assert client.validate_consistency(wid).consistent


def test_failed_compensation_is_recorded_and_the_rest_still_run(client, workers):
    define(client, "best-effort", [step("a"), step("b"), step("c"), step("d")])
    workers(1)

    wid = start(client, "best-effort", {"plan": {"b": {"undo_fail": "always"}, "d": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is True
    assert snap["failed_compensations"] == ["b"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["c", "b", "a"]
    evts = events(client, wid)
    assert one(evts, "CompensationFailed", "b")["will_retry"] is False
    assert [e["step_id"] for e in of_type(evts, "StepCompensated")] == ["c", "a"]
    done = one(evts, "WorkflowCompensated")
    assert done["requires_attention"] is True
    assert done["failed_compensations"] == ["b"]
    assert step_of(snap, "b")["status"] == "COMPENSATION_FAILED"
    assert wid in [i["workflow_id"] for i in client.list(requires_attention=True).items]


def test_operator_retry_of_a_failed_undo_that_now_succeeds(client, workers):
    define(client, "operator-retry", [step("a"), step("b"), step("c")])
    workers(1)

    # b's undo fails on its first call only: the saga ends needing attention, the retry fixes it.
    wid = start(client, "operator-retry", {"plan": {"b": {"undo_fail_times": 1}, "c": {"fail": "final"}}})
    snap = client.wait(wid, 20)
    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is True
    assert snap["failed_compensations"] == ["b"]

    client.retry_compensation(wid, by="operator")
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    assert snap["failed_compensations"] == []
    assert step_of(snap, "b")["status"] == "COMPENSATED"
    # b's undo ran twice (failed, then the operator's retry); a's once; nothing else re-ran.
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["b", "a", "b"]
    evts = events(client, wid)
    assert types(evts)[-1] == "WorkflowCompensated"
    assert of_type(evts, "WorkflowCompensated")[-1]["requires_attention"] is False
    assert wid not in [i["workflow_id"] for i in client.list(requires_attention=True).items]
    assert client.validate_consistency(wid).consistent


def test_workflow_timeout_compensates_the_completed_steps(client, workers):
    # b would take 3 s; the workflow has 1 s. b is an async handler: it is cancelled at the deadline.
    b = step("b", timeout="10s", action="tests.handlers:async_step")
    define(client, "wf-timeout", [step("a"), b, step("c")], timeout="1s")
    pool = workers(1)
    wait_ready(client, pool)

    wid = start(client, "wf-timeout", {"plan": {"b": {"sleep": 3}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["compensation_reason"] == "timeout"
    evts = events(client, wid)
    kinds = types(evts)
    t_out = index_of(evts, "WorkflowTimeout")
    assert kinds[t_out + 1] == "CompensationStarted"
    timeout = evts[t_out]
    created = evts[0]["at"]
    assert 1.0 <= timeout["at"] - created < 2.0, "the deadline was not enforced on the running step"
    assert timeout["last_executed_step"] == "a"
    assert one(evts, "StepFailed", "b")["error_type"] == "StepTimeout"
    # a completed and is undone; b was cut at the deadline with an unknown effect, so it is undone
    # too (first: its attempt started last); c never ran.
    assert one(evts, "CompensationStarted")["steps_to_compensate"] == ["b", "a"]
    assert kinds[t_out + 1 :] == [
        "CompensationStarted",
        "CompensationStepStarted",
        "StepCompensated",
        "CompensationStepStarted",
        "StepCompensated",
        "WorkflowCompensated",
    ]
    assert [e["step_id"] for e in of_type(evts, "StepCompensated")] == ["b", "a"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["b", "a"]
    assert calls(client, wid, step_id="c") == []
    assert kinds[-1] == "WorkflowCompensated"


def test_compensation_past_its_deadline_is_flagged(client, workers):
    # Forward takes milliseconds, so the budget is the floor (1 s plus one lease); the undo takes longer.
    floor = client.settings.compensation_floor
    assert floor == 1.0 + client.settings.lease_seconds
    define(client, "slow-undo", [step("a"), step("b")])
    workers(1)

    wid = start(client, "slow-undo", {"plan": {"a": {"undo_sleep": floor + 0.5}, "b": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is True
    assert snap["compensation_timed_out"] is True
    evts = events(client, wid)
    started = one(evts, "CompensationStarted")
    assert started["compensation_deadline"] - started["at"] == floor
    flagged = one(evts, "CompensationTimeout")
    assert flagged["budget"] == floor
    assert flagged["at"] > started["compensation_deadline"]
    assert one(evts, "WorkflowCompensated")["requires_attention"] is True
    assert wid in [i["workflow_id"] for i in client.list(requires_attention=True).items]


def test_a_failed_branch_waits_for_its_sibling_in_flight_and_compensates_it(client, workers):
    steps = [
        step("a"),
        step("b", depends_on=["a"]),
        step("c", depends_on=["a"]),
        step("d", depends_on=["b", "c"]),
    ]
    define(client, "failed-branch", steps)
    workers(1)

    wid = start(client, "failed-branch", {"plan": {"b": {"fail": "final"}, "c": {"sleep": 0.5}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    evts = events(client, wid)
    # The failure waits for c's result before the LIFO order is fixed; c is then undone first.
    assert index_of(evts, "StepFailed", "b") < index_of(evts, "StepExecuted", "c") < index_of(evts, "WorkflowFailed")
    assert one(evts, "WorkflowFailed")["step_id"] == "b"
    assert one(evts, "CompensationStarted")["steps_to_compensate"] == ["c", "a"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["c", "a"]
    assert calls(client, wid, step_id="d") == []
