"""Illegal events through the WorkflowInstance aggregate: refused with IllegalTransition, instance unchanged."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from engine.domain import events as ev
from engine.domain.events import event_types
from engine.domain.instance import WorkflowInstance
from engine.domain.status import StepStatus, WorkflowStatus
from engine.errors import IllegalTransition
from tests.unit.factories import T0, WID, SagaBuilder, created_event, fan_out_plan, sample_events


def assert_refused(saga: SagaBuilder, event: ev.DomainEvent) -> None:
    """The event raises IllegalTransition and leaves the instance exactly as it was."""
    before = saga.snapshot()
    pending_before = list(saga.inst.pending)
    with pytest.raises(IllegalTransition):
        saga.inst.record(event)
    assert saga.inst.to_dict() == before
    assert saga.inst.pending == pending_before


# ---------------------------------------------------------------------------------------------- states
def created() -> SagaBuilder:
    return SagaBuilder()


def running() -> SagaBuilder:
    return SagaBuilder().start()


def running_a_done() -> SagaBuilder:
    return SagaBuilder().start().run_step("a")


def paused() -> SagaBuilder:
    return SagaBuilder().start().run_step("a").pause()


def completed() -> SagaBuilder:
    return SagaBuilder().start().run_step("a").run_step("b").run_step("c").complete()


def cancelled() -> SagaBuilder:
    return SagaBuilder().cancel()


def compensating() -> SagaBuilder:
    """a, b done; c failed for good; compensation began (stack a, b)."""
    return (
        SagaBuilder().start().run_step("a").run_step("b").start_step("c").fail_step("c").fail("c").begin_compensation()
    )


def compensated_clean() -> SagaBuilder:
    return compensating().compensate_all().finish_compensation()


def compensated_with_failure() -> SagaBuilder:
    """b's compensation failed for good, a's succeeded."""
    return compensating().fail_compensation("b").compensate("a").finish_compensation()


def at() -> float:
    return T0 + 10_000.0


# ---------------------------------------------------------------------------------------------- table
CASES: list[tuple[str, Callable[[], SagaBuilder], Callable[[SagaBuilder], ev.DomainEvent]]] = [
    ("resume-running", running, lambda s: ev.WorkflowResumed(WID, at())),
    ("resume-created", created, lambda s: ev.WorkflowResumed(WID, at())),
    ("pause-created", created, lambda s: ev.WorkflowPaused(WID, at())),
    ("pause-paused", paused, lambda s: ev.WorkflowPaused(WID, at())),
    ("start-running", running, lambda s: ev.WorkflowStarted(WID, at(), "order-fulfillment", "corr-1")),
    ("created-twice", running, lambda s: created_event()),
    ("timeout-created", created, lambda s: ev.WorkflowTimeout(WID, at(), None, 1.0)),
    ("fail-created", created, lambda s: ev.WorkflowFailed(WID, at(), None, "x")),
    ("fail-paused", paused, lambda s: ev.WorkflowFailed(WID, at(), None, "x")),
    (
        "completed-with-unfinished-steps",
        running_a_done,
        lambda s: ev.WorkflowCompleted(WID, at(), 1.0, {}, {}),
    ),
    ("completed-from-created", created, lambda s: ev.WorkflowCompleted(WID, at(), 1.0, {}, {})),
    ("step-started-before-dependency", running, lambda s: ev.StepStarted(WID, at(), "b", 1, "k", {})),
    ("step-started-while-created", created, lambda s: ev.StepStarted(WID, at(), "a", 1, "k", {})),
    ("step-started-while-paused", paused, lambda s: ev.StepStarted(WID, at(), "b", 1, "k", {})),
    ("step-started-twice", lambda: running().start_step("a"), lambda s: ev.StepStarted(WID, at(), "a", 2, "k", {})),
    ("step-started-completed-step", running_a_done, lambda s: ev.StepStarted(WID, at(), "a", 2, "k", {})),
    ("step-executed-not-running", running, lambda s: ev.StepExecuted(WID, at(), "a", 1, 0.1)),
    (
        "step-executed-wrong-attempt",
        lambda: running().start_step("a", attempt=2),
        lambda s: ev.StepExecuted(WID, at(), "a", 1, 0.1),
    ),
    ("step-executed-twice", running_a_done, lambda s: ev.StepExecuted(WID, at(), "a", 1, 0.1)),
    ("step-failed-not-running", running, lambda s: ev.StepFailed(WID, at(), "a", 1, "x", "E", False)),
    ("cancel-compensating", compensating, lambda s: ev.WorkflowCancelled(WID, at())),
    (
        "cancel-failed",
        lambda: running().start_step("a").fail_step("a").fail("a"),
        lambda s: ev.WorkflowCancelled(WID, at()),
    ),
    (
        "compensation-started-while-compensating",
        compensating,
        lambda s: ev.CompensationStarted(WID, at(), "again", [], at() + 60),
    ),
    (
        "compensation-started-from-created",
        created,
        lambda s: ev.CompensationStarted(WID, at(), "x", [], at() + 60),
    ),
    ("compensated-with-non-empty-stack", compensating, lambda s: ev.WorkflowCompensated(WID, at(), "x", False, [])),
    ("compensated-while-running", running, lambda s: ev.WorkflowCompensated(WID, at(), "x", False, [])),
    (
        "compensation-step-not-on-top",
        compensating,
        lambda s: ev.CompensationStepStarted(WID, at(), "a", 1, "undo", "k"),
    ),
    (
        "compensation-step-while-running",
        running_a_done,
        lambda s: ev.CompensationStepStarted(WID, at(), "a", 1, "undo", "k"),
    ),
    ("step-compensated-not-on-top", compensating, lambda s: ev.StepCompensated(WID, at(), "a", 1, "undo", 0.1)),
    ("step-compensated-while-running", running_a_done, lambda s: ev.StepCompensated(WID, at(), "a", 1, "undo", 0.1)),
    ("parked-not-on-top", compensating, lambda s: ev.CompensationParked(WID, at(), "a")),
    ("compensation-timeout-while-running", running, lambda s: ev.CompensationTimeout(WID, at(), 1.0, 1.0)),
    ("retry-requested-on-completed", completed, lambda s: ev.CompensationRetryRequested(WID, at(), ["a"])),
    ("retry-requested-on-compensating", compensating, lambda s: ev.CompensationRetryRequested(WID, at(), ["b"])),
    (
        "retry-requested-step-without-failed-compensation",
        compensated_with_failure,
        lambda s: ev.CompensationRetryRequested(WID, at(), ["a"]),
    ),
    (
        "retry-requested-on-clean-compensation",
        compensated_clean,
        lambda s: ev.CompensationRetryRequested(WID, at(), ["a"]),
    ),
    ("retry-requested-no-steps", compensated_with_failure, lambda s: ev.CompensationRetryRequested(WID, at(), [])),
    ("lock-waiting-while-running", running, lambda s: ev.ResourceLockWaiting(WID, at(), ["sku:1"], "wf-0")),
]


@pytest.mark.parametrize(("state", "make_event"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_illegal_event_is_refused_and_changes_nothing(state, make_event) -> None:
    saga = state()
    assert_refused(saga, make_event(saga))


# Every event class on every finished workflow ("cannot modify a completed workflow").
FINISHED = {"COMPLETED": completed, "CANCELLED": cancelled}


@pytest.mark.parametrize("event_type", event_types())
@pytest.mark.parametrize("finished", sorted(FINISHED))
def test_no_event_changes_a_completed_or_cancelled_workflow(finished, event_type) -> None:
    saga = FINISHED[finished]()
    assert saga.inst.status is WorkflowStatus(finished)
    assert_refused(saga, sample_events(at=at())[event_type])


@pytest.mark.parametrize("event_type", [t for t in event_types() if t != "CompensationRetryRequested"])
def test_only_an_operator_retry_reopens_a_compensated_workflow(event_type) -> None:
    saga = compensated_with_failure()
    assert_refused(saga, sample_events(at=at())[event_type])


def test_event_of_another_workflow_is_refused() -> None:
    saga = running()
    before = saga.snapshot()
    with pytest.raises(ValueError, match="wf-other"):
        saga.inst.record(ev.WorkflowPaused("wf-other", at()))
    assert saga.inst.to_dict() == before


# ---------------------------------------------------------------------------------------------- legal edges
def test_cancel_of_created_ends_cancelled() -> None:
    saga = cancelled()
    assert saga.inst.status is WorkflowStatus.CANCELLED
    assert saga.inst.reason == "cancelled"
    assert saga.inst.finished_at is not None


def test_cancel_of_running_keeps_running_until_compensation_starts() -> None:
    saga = running_a_done().cancel()
    assert saga.inst.status is WorkflowStatus.RUNNING
    saga.begin_compensation("cancelled")
    assert saga.inst.status is WorkflowStatus.COMPENSATING
    assert saga.inst.reason == "cancelled"


def test_pause_resume_round_trip() -> None:
    saga = paused()
    assert saga.inst.status is WorkflowStatus.PAUSED
    assert saga.inst.paused_at == saga.now
    saga.resume()
    assert saga.inst.status is WorkflowStatus.RUNNING
    assert saga.inst.paused_at is None


def test_timeout_while_paused_is_legal() -> None:
    saga = paused().time_out()
    assert saga.inst.status is WorkflowStatus.TIMEOUT


def test_in_flight_step_may_finish_while_paused() -> None:
    saga = running().start_step("a").pause().finish_step("a")
    assert saga.inst.step("a").status is StepStatus.COMPLETED


def test_recovered_start_of_a_running_step_is_legal() -> None:
    saga = running().start_step("a").start_step("a", attempt=1, recovered=True)
    assert saga.inst.step("a").status is StepStatus.RUNNING


def test_parallel_branches_start_once_their_parent_completed() -> None:
    saga = SagaBuilder(fan_out_plan()).start().run_step("a").start_step("b").start_step("c")
    assert [saga.inst.step(s).status for s in "bc"] == [StepStatus.RUNNING, StepStatus.RUNNING]
    assert_refused(saga, ev.StepStarted(WID, at(), "d", 1, "k", {}))


def test_join_step_waits_for_every_dependency() -> None:
    saga = SagaBuilder(fan_out_plan()).start().run_step("a").run_step("b")
    assert_refused(saga, ev.StepStarted(WID, at(), "d", 1, "k", {}))


# ---------------------------------------------------------------------------------------------- bugs
def test_compensation_failed_for_a_step_not_on_top_changes_nothing() -> None:
    saga = compensating()  # stack: a, b (b on top)
    assert_refused(saga, ev.CompensationFailed(WID, at(), "a", 1, "x", "E", False))


def test_compensation_retry_for_a_step_not_on_top_is_refused() -> None:
    saga = compensating()
    assert_refused(saga, ev.CompensationFailed(WID, at(), "a", 1, "x", "E", True, at() + 1.0))


def test_first_event_must_be_workflow_created() -> None:
    with pytest.raises((IllegalTransition, ValueError)):
        WorkflowInstance.replay([ev.WorkflowStarted(WID, T0, "order-fulfillment", "corr-1")])


def test_second_created_is_refused_even_on_a_fresh_stream() -> None:
    inst = WorkflowInstance.create(created_event())
    before = copy.deepcopy(inst.to_dict())
    with pytest.raises(IllegalTransition):
        inst.record(created_event())
    assert inst.to_dict() == before
