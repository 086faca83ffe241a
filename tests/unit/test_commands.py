"""``engine.domain.commands``: operator controls as events, or refused with the reason. Pure: no I/O."""

from __future__ import annotations

import pytest

from engine.domain import commands
from engine.domain import events as ev
from engine.errors import IllegalTransition
from tests.unit.factories import WID, SagaBuilder


def created() -> SagaBuilder:
    return SagaBuilder()


def running() -> SagaBuilder:
    return SagaBuilder().start().run_step("a").start_step("b")


def paused() -> SagaBuilder:
    return running().pause()


def completed() -> SagaBuilder:
    return SagaBuilder(("a",)).start().run_step("a").complete()


def compensated(failed: bool = True) -> SagaBuilder:
    saga = SagaBuilder(("a", "b")).start().run_step("a").run_step("b").cancel().begin_compensation("cancelled")
    saga.compensate("b")
    if failed:
        saga.fail_compensation("a")
    else:
        saga.compensate("a")
    return saga.finish_compensation("cancelled")


def cancelled() -> SagaBuilder:
    return SagaBuilder().cancel()


def compensating() -> SagaBuilder:
    return running().cancel().begin_compensation("cancelled")


TABLE = [
    # (command, state, expected event types or the refusal's target)
    ("pause", running, ["WorkflowPaused"]),
    ("pause", created, "PAUSED"),
    ("pause", paused, "PAUSED"),
    ("pause", compensating, "PAUSED"),
    ("pause", completed, "PAUSED"),
    ("resume", paused, ["WorkflowResumed"]),
    ("resume", running, "RUNNING"),
    ("resume", compensated, "RUNNING"),
    ("cancel", created, ["WorkflowCancelled"]),
    ("cancel", running, ["WorkflowCancelled", "CompensationStarted"]),
    ("cancel", paused, ["WorkflowCancelled", "CompensationStarted"]),
    ("cancel", compensating, "CANCELLED"),
    ("cancel", completed, "CANCELLED"),
    ("cancel", cancelled, "CANCELLED"),
    ("retry_compensation", compensated, ["CompensationRetryRequested"]),
    ("retry_compensation", lambda: compensated(failed=False), "COMPENSATING"),
    ("retry_compensation", running, "COMPENSATING"),
    ("retry_compensation", compensating, "COMPENSATING"),
]


@pytest.mark.parametrize(("command", "state", "expected"), TABLE, ids=lambda v: getattr(v, "__name__", str(v)))
def test_controls(command, state, expected) -> None:
    saga = state()
    before = saga.snapshot()
    run = getattr(commands, command)
    if isinstance(expected, str):
        with pytest.raises(IllegalTransition) as refused:
            run(saga.inst, saga.now)
        assert refused.value.target == expected
    else:
        events = run(saga.inst, saga.now)
        assert [type(e).__name__ for e in events] == expected
        for e in events:  # legal on the instance they were computed for
            saga.record(e)
    if isinstance(expected, str):
        assert saga.snapshot() == before, "a refused control changed the saga"


def test_cancel_of_a_running_saga_compensates_what_completed_newest_first() -> None:
    saga = SagaBuilder(("a", "b", "c")).start().run_step("a").run_step("b").start_step("c")
    cancelled_event, started = commands.cancel(saga.inst, saga.now, by="alice", reason="customer called")
    assert cancelled_event == ev.WorkflowCancelled(WID, saga.now, "alice", "customer called")
    assert (started.reason, started.steps_to_compensate) == ("customer called", ["b", "a"])


def test_pause_and_resume_say_who() -> None:
    saga = running()
    (paused_event,) = commands.pause(saga.inst, saga.now, by="bob", reason="inspection")
    assert (paused_event.by, paused_event.reason) == ("bob", "inspection")
    saga.record(paused_event)
    assert commands.resume(saga.inst, saga.now, by="carol")[0].by == "carol"


def test_cancel_and_an_operators_retry_grant_the_floor() -> None:
    saga = running()
    started = commands.cancel(saga.inst, saga.now, floor=60.0)[1]
    assert started.compensation_deadline == saga.now + 60.0
    done = compensated()
    (retry,) = commands.retry_compensation(done.inst, done.now, floor=60.0)
    assert retry.compensation_deadline == done.now + 60.0
    done.record(retry)
    assert done.inst.compensation_deadline == done.now + 60.0


def test_retry_compensation_defaults_to_every_failed_one_and_refuses_unknown_steps() -> None:
    saga = compensated()
    assert commands.retry_compensation(saga.inst, saga.now)[0].steps == ["a"]
    assert commands.retry_compensation(saga.inst, saga.now, ["a", "a"], by="dan")[0].steps == ["a"]
    with pytest.raises(IllegalTransition, match="no failed compensation for \\['b'\\]"):
        commands.retry_compensation(saga.inst, saga.now, ["b"])
