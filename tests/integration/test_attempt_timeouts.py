"""Timeouts never leak an effect: an attempt is compensated (or retried) only after it has ended.

An ``async def`` handler is cancelled at its timeout or at the workflow deadline, so it never applies its
late effect. A blocking handler cannot be stopped: it is awaited up to the grace period, and what it did
is recorded only once it returned; past the grace it counts as still running, and its step's
compensation is parked (``attempt-still-running``) instead of undoing what may still be done. Each test
has a handler that applies an effect after its timeout (``late_effect``) and checks when it happened
against what the saga recorded, on real worker processes.
"""

from __future__ import annotations

import pytest

from tests.handlers import read_late_effects
from tests.integration.support import calls, define, events, of_type, one, start, step, wait_for, wait_ready

pytestmark = pytest.mark.timeout(60)

ASYNC = "tests.handlers:async_step"
ONCE = {"max_attempts": 1}


def late(client, wid: str) -> list[tuple[str, int, float]]:
    return read_late_effects(client.r, client.settings.key_prefix, wid)


def cancelled(client, wid: str) -> list[tuple[str, int, float]]:
    return read_late_effects(client.r, client.settings.key_prefix, wid, key="cancelled")


def test_an_async_attempt_is_cancelled_at_its_timeout_and_never_applies_late(client, workers):
    define(client, "async-timeout", [step("slow", timeout="300ms", action=ASYNC)])
    workers(1)
    plan = {"slow": {"sleep": 2, "sleep_calls": 1, "late_effect": True}}
    wid = start(client, "async-timeout", {"plan": plan})
    assert client.wait(wid, 20)["status"] == "COMPLETED"
    evts = events(client, wid)
    failed = one(evts, "StepFailed", "slow")
    started = of_type(evts, "StepStarted", "slow")[0]
    assert failed["error_type"] == "StepTimeout" and failed["will_retry"] and failed["uncertain"]
    assert 0.25 <= failed["at"] - started["at"] < 1.0, "the attempt was not stopped at its timeout"
    ((_, attempt, at),) = cancelled(client, wid)
    assert attempt == 1 and at <= failed["at"], "the attempt was recorded before it ended"
    assert [a for _, a, _ in late(client, wid)] == [2], "the cancelled first attempt applied its effect"


def test_a_blocking_attempt_past_its_timeout_is_recorded_once_it_returned(client, workers):
    define(client, "blocking-timeout", [step("slow", timeout="300ms")])
    workers(1, attempt_grace_seconds=5.0)
    plan = {"slow": {"sleep": 1.5, "sleep_calls": 1, "late_effect": True}}
    wid = start(client, "blocking-timeout", {"plan": plan})
    assert client.wait(wid, 20)["status"] == "COMPLETED"
    evts = events(client, wid)
    failed = one(evts, "StepFailed", "slow")
    assert failed["error_type"] == "StepTimeout" and failed["will_retry"] and failed["uncertain"]
    (first_effect,) = [at for _, attempt, at in late(client, wid) if attempt == 1]
    assert failed["at"] >= first_effect, "the attempt was given up while it still ran"
    second = of_type(evts, "StepStarted", "slow")[1]
    assert second["at"] >= first_effect, "a retry started while the first attempt still ran"


def test_a_parallel_blocking_attempt_past_its_grace_is_parked_and_the_saga_needs_attention(client, workers):
    steps = [step("a"), step("b", depends_on=["a"], timeout="300ms", retry=ONCE), step("c", depends_on=["a"])]
    define(client, "still-running", steps)
    pool = workers(1, attempt_grace_seconds=0.5)
    wait_ready(client, pool)
    wid = start(client, "still-running", {"plan": {"b": {"sleep": 3, "late_effect": True}}})
    snap = client.wait(wid, 30)
    assert snap["status"] == "COMPENSATED"
    assert snap["requires_attention"] is True
    assert snap["failed_compensations"] == ["b"]
    evts = events(client, wid)
    failed = one(evts, "StepFailed", "b")
    assert failed["error_type"] == "AttemptStillRunning" and failed["will_retry"] is False
    parked = one(evts, "CompensationParked", "b")
    assert parked["note"].startswith("attempt-still-running")
    assert one(evts, "StepCompensated", "a")["at"] > failed["at"]
    assert not calls(client, wid, "compensation", "b"), "b was undone while its attempt could still act"
    assert _wait_late(client, wid, "b") > parked["at"], "the effect a clean undo would have missed did come"


@pytest.mark.parametrize("handler", ["blocking", "async"])
def test_the_workflow_deadline_stops_a_parallel_branch_before_compensating(client, workers, handler):
    """The issue's repro: a; b and c after it; b would take 4 s; the workflow has 2 s, the step 20 s."""
    b = step("b", depends_on=["a"], timeout="20s", retry=ONCE)
    if handler == "async":
        b["action"] = ASYNC
    define(client, f"deadline-{handler}", [step("a"), b, step("c", depends_on=["a"])], timeout="2s")
    pool = workers(1, attempt_grace_seconds=0.5)
    wait_ready(client, pool)
    wid = start(client, f"deadline-{handler}", {"plan": {"b": {"sleep": 4, "late_effect": True}}})
    snap = client.wait(wid, 30)
    assert snap["status"] == "COMPENSATED" and snap["compensation_reason"] == "timeout"
    evts = events(client, wid)
    given_up = one(evts, "StepFailed", "b")
    assert given_up["uncertain"] is True
    if handler == "async":
        # Cancelled at the deadline: it never applied its effect, so undoing it is clean.
        assert given_up["error_type"] == "StepTimeout"
        assert snap["requires_attention"] is False
        assert one(evts, "StepCompensated", "b")
        ((_, _, at),) = cancelled(client, wid)
        assert at <= given_up["at"], "b was given up before its attempt ended"
        assert late(client, wid) == []
    else:
        # It could not be stopped: not undone while it may act; the saga says so.
        assert given_up["error_type"] == "AttemptStillRunning"
        assert snap["requires_attention"] is True and snap["failed_compensations"] == ["b"]
        assert one(evts, "CompensationParked", "b")["note"].startswith("attempt-still-running")
        assert not calls(client, wid, "compensation", "b")
        assert _wait_late(client, wid, "b") > given_up["at"]
    assert one(evts, "StepCompensated", "a") and one(evts, "StepCompensated", "c")


def test_a_blocking_branch_that_ends_within_the_grace_is_undone_after_it_ended(client, workers):
    b = step("b", depends_on=["a"], timeout="20s", retry=ONCE)
    define(client, "deadline-grace", [step("a"), b, step("c", depends_on=["a"])], timeout="1s")
    pool = workers(1, attempt_grace_seconds=5.0)
    wait_ready(client, pool)
    wid = start(client, "deadline-grace", {"plan": {"b": {"sleep": 2, "late_effect": True}}})
    snap = client.wait(wid, 30)
    assert snap["status"] == "COMPENSATED" and snap["requires_attention"] is False
    evts = events(client, wid)
    (effect_at,) = [at for s, _, at in late(client, wid) if s == "b"]
    assert one(evts, "StepFailed", "b")["at"] >= effect_at
    assert one(evts, "WorkflowTimeout")["at"] >= effect_at, "compensation began while b still ran"
    assert one(evts, "StepCompensated", "b")["at"] > effect_at


def _wait_late(client, wid: str, step_id: str, timeout: float = 10.0) -> float:
    found = wait_for(
        lambda: [at for s, _, at in late(client, wid) if s == step_id], timeout, f"{step_id}'s late effect"
    )
    return found[0]
