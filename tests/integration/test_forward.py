"""Forward recovery on real workers: retries and their delays, retryable errors, step timeouts,
parallel branches."""

from __future__ import annotations

import pytest

from engine.domain.status import WorkflowStatus
from tests.integration.support import (
    calls,
    define,
    events,
    index_of,
    of_type,
    one,
    start,
    step,
    types,
    wait_for,
    wait_ready,
)

EPS = 1e-6


def test_retry_then_success_waits_for_each_recorded_retry_time(client, workers):
    retry = {"max_attempts": 4, "backoff": "LINEAR", "initial_delay": "100ms"}
    define(client, "retry-ok", [step("a"), step("b", retry=retry), step("c")])
    workers(1)

    wid = start(client, "retry-ok", {"plan": {"b": {"fail_times": 2}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPLETED"
    b = next(s for s in snap["steps"] if s["step_id"] == "b")
    assert b["attempt"] == 3
    assert snap["retry_state"]["total_retries"] == 2
    evts = events(client, wid)
    failed = of_type(evts, "StepFailed", "b")
    started = of_type(evts, "StepStarted", "b")
    assert [f["attempt"] for f in failed] == [1, 2]
    assert all(f["will_retry"] and f["error_type"] == "StepError" for f in failed)
    assert [s["attempt"] for s in started] == [1, 2, 3]
    for f, nxt in zip(failed, started[1:], strict=True):
        assert f["next_attempt_at"] == pytest.approx(f["at"] + 0.1, abs=EPS)
        assert nxt["at"] >= f["next_attempt_at"], "a retry started before its recorded next_attempt_at"
    # What actually ran: a and c once, b three times with attempts 1, 2, 3.
    assert [c.attempt for c in calls(client, wid, step_id="b")] == [1, 2, 3]
    assert len(calls(client, wid, step_id="a")) == 1
    assert len(calls(client, wid, step_id="c")) == 1
    assert calls(client, wid, phase="compensation") == []


def test_exhausted_retries_compensate_completed_steps_in_lifo_order(client, workers):
    steps = [step("a"), step("b"), step("c"), step("d", retry={"max_attempts": 2, "initial_delay": "50ms"})]
    define(client, "retry-exhausted", steps)
    workers(1)

    wid = start(client, "retry-exhausted", {"plan": {"d": {"fail_times": 99}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is False
    assert snap["failed_compensations"] == []
    evts = events(client, wid)
    assert [f["will_retry"] for f in of_type(evts, "StepFailed", "d")] == [True, False]
    failed = one(evts, "WorkflowFailed")
    assert failed["step_id"] == "d"
    assert one(evts, "CompensationStarted")["steps_to_compensate"] == ["c", "b", "a"]
    assert index_of(evts, "WorkflowFailed") < index_of(evts, "CompensationStarted")
    assert [e["step_id"] for e in of_type(evts, "StepCompensated")] == ["c", "b", "a"]
    assert types(evts)[-1] == "WorkflowCompensated"
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["c", "b", "a"]
    assert [c.attempt for c in calls(client, wid, step_id="d")] == [1, 2]


def test_compensation_follows_completion_order_not_declaration_order(client, workers):
    # a and b run in parallel; b finishes first, so LIFO undoes a before b.
    steps = [
        step("a", depends_on=[]),
        step("b", depends_on=[]),
        step("c", depends_on=["a", "b"]),
    ]
    define(client, "lifo-completion", steps)
    workers(1)

    wid = start(client, "lifo-completion", {"plan": {"a": {"sleep": 0.3}, "c": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    evts = events(client, wid)
    assert [e["step_id"] for e in of_type(evts, "StepExecuted")] == ["b", "a"]
    assert [e["step_id"] for e in of_type(evts, "StepCompensated")] == ["a", "b"]
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["a", "b"]


BACKOFFS = {
    # strategy: (retry policy, expected delays before retries 1, 2, 3)
    "LINEAR": ({"backoff": "LINEAR", "initial_delay": "50ms", "increment": "50ms"}, [0.05, 0.10, 0.15]),
    "EXPONENTIAL": ({"backoff": "EXPONENTIAL", "initial_delay": "50ms"}, [0.05, 0.10, 0.20]),
    "FIBONACCI": ({"backoff": "FIBONACCI", "initial_delay": "50ms"}, [0.05, 0.05, 0.10]),
    "CUSTOM": (
        {"backoff": "CUSTOM", "initial_delay": "50ms", "custom": "tests.handlers:custom_backoff"},
        [0.15, 0.05, 0.10],
    ),
}


@pytest.mark.parametrize("strategy", list(BACKOFFS))
def test_backoff_strategy_delays_on_a_real_run(client, workers, strategy):
    policy, expected = BACKOFFS[strategy]
    define(client, f"backoff-{strategy.lower()}", [step("x", retry={"max_attempts": 4, "max_delay": "1s", **policy})])
    workers(1)

    wid = start(client, f"backoff-{strategy.lower()}", {"plan": {"x": {"fail_times": 3}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPLETED"
    evts = events(client, wid)
    failed = of_type(evts, "StepFailed", "x")
    delays = [f["next_attempt_at"] - f["at"] for f in failed]
    assert delays == pytest.approx(expected, abs=1e-3)
    started = of_type(evts, "StepStarted", "x")
    for f, nxt in zip(failed, started[1:], strict=True):
        assert nxt["at"] >= f["next_attempt_at"]
    assert [c.attempt for c in calls(client, wid, step_id="x")] == [1, 2, 3, 4]


def test_non_retryable_error_skips_retries(client, workers):
    define(client, "final-error", [step("a"), step("b", retry={"max_attempts": 5, "initial_delay": "50ms"})])
    workers(1)

    wid = start(client, "final-error", {"plan": {"b": {"fail": "final"}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPENSATED"
    failed = one(events(client, wid), "StepFailed", "b")
    assert failed["will_retry"] is False
    assert failed["next_attempt_at"] is None
    assert failed["error_type"] == "NonRetryableStepError"
    assert len(calls(client, wid, step_id="b")) == 1
    assert [c.step_id for c in calls(client, wid, phase="compensation")] == ["a"]


def test_retryable_errors_limit_which_errors_are_retried(client, workers):
    retry = {"max_attempts": 3, "backoff": "LINEAR", "initial_delay": "50ms", "retryable_errors": ["InventoryBusy"]}
    define(client, "listed-errors", [step("a"), step("b", retry=retry)])
    workers(1)

    listed = start(client, "listed-errors", {"plan": {"b": {"error_type": "InventoryBusy", "error_times": 1}}})
    unlisted = start(client, "listed-errors", {"plan": {"b": {"error_type": "PaymentDeclined", "error_times": 1}}})
    assert client.wait(listed, 20)["status"] == "COMPLETED"
    assert client.wait(unlisted, 20)["status"] == "COMPENSATED"

    retried = of_type(events(client, listed), "StepFailed", "b")
    assert [(f["error_type"], f["will_retry"]) for f in retried] == [("InventoryBusy", True)]
    assert [c.attempt for c in calls(client, listed, step_id="b")] == [1, 2]
    refused = of_type(events(client, unlisted), "StepFailed", "b")
    assert [(f["error_type"], f["will_retry"]) for f in refused] == [("PaymentDeclined", False)]
    assert [c.attempt for c in calls(client, unlisted, step_id="b")] == [1]


def test_step_timeout_fails_the_attempt_and_retries(client, workers):
    """An ``async def`` handler is cancelled at its timeout: the attempt ends there and is retried."""
    define(client, "step-timeout", [step("slow", timeout="300ms", action="tests.handlers:async_step")])
    workers(1)

    wid = start(client, "step-timeout", {"plan": {"slow": {"sleep": 2, "sleep_calls": 1}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == "COMPLETED"
    evts = events(client, wid)
    failed = one(evts, "StepFailed", "slow")
    assert failed["error_type"] == "StepTimeout"
    assert failed["will_retry"] is True
    assert failed["uncertain"] is True
    started = of_type(evts, "StepStarted", "slow")
    assert 0.25 <= failed["at"] - started[0]["at"] < 1.0, "the attempt was not cut at its 300ms timeout"
    assert [c.attempt for c in calls(client, wid, step_id="slow")] == [1, 2]
    assert one(evts, "StepExecuted", "slow")["attempt"] == 2


def test_parallel_branches_overlap_and_join_waits_for_both(client, workers):
    steps = [
        step("a"),
        step("b", depends_on=["a"]),
        step("c", depends_on=["a"]),
        step("d", depends_on=["b", "c"]),
    ]
    define(client, "diamond", steps)
    pool = workers(1)
    wait_ready(client, pool)

    wid = start(client, "diamond", {"plan": {"b": {"sleep": 0.5}, "c": {"sleep": 0.5}}})
    snap = client.wait(wid, 20)

    assert snap["status"] == WorkflowStatus.COMPLETED
    evts = events(client, wid)
    first_done = min(index_of(evts, "StepExecuted", "b"), index_of(evts, "StepExecuted", "c"))
    assert index_of(evts, "StepStarted", "b") < first_done
    assert index_of(evts, "StepStarted", "c") < first_done
    b0, c0 = one(evts, "StepStarted", "b")["at"], one(evts, "StepStarted", "c")["at"]
    b1, c1 = one(evts, "StepExecuted", "b")["at"], one(evts, "StepExecuted", "c")["at"]
    assert max(b0, c0) < min(b1, c1), "b and c did not run at the same time"
    assert max(b1, c1) - min(b0, c0) < 0.9, "b and c together took about as long as one after the other"
    d0 = one(evts, "StepStarted", "d")["at"]
    assert d0 >= max(b1, c1)
    assert index_of(evts, "StepStarted", "d") > max(
        index_of(evts, "StepExecuted", "b"), index_of(evts, "StepExecuted", "c")
    )
    order = [c.step_id for c in calls(client, wid)]
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]


def test_a_running_instance_keeps_its_definition_version(client, workers):
    define(client, "versioned", [step("a"), step("b")])
    workers(1)

    old = start(client, "versioned", {"plan": {"a": {"sleep": 0.5}}})
    wait_for(lambda: calls(client, old, step_id="a"), 10, "step a to start")
    define(client, "versioned", [step("a"), step("b"), step("c")])
    new = start(client, "versioned")
    assert client.wait(old, 20)["status"] == "COMPLETED"
    assert client.wait(new, 20)["status"] == "COMPLETED"

    assert client.get(old)["definition_version"] == 1
    assert client.get(new)["definition_version"] == 2
    assert [c.step_id for c in calls(client, old)] == ["a", "b"]
    assert [c.step_id for c in calls(client, new)] == ["a", "b", "c"]
