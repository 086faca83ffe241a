"""The WorkflowInstance aggregate: what each story of events does, and replay == snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from engine.domain import events as ev
from engine.domain.instance import WorkflowInstance
from engine.domain.status import SagaPhase, StepStatus, WorkflowStatus
from engine.errors import IllegalTransition
from tests.unit.factories import T0, WID, SagaBuilder, fan_out_plan, json_roundtrip


def statuses(saga: SagaBuilder) -> dict[str, StepStatus]:
    return {s.step_id: s.status for s in saga.inst.steps}


# ---------------------------------------------------------------------------------------------- stories
def happy_path() -> SagaBuilder:
    return (
        SagaBuilder(input={"order_id": "o-1", "qty": 2})
        .start()
        .run_step("a", {"reservation": "r-1", "qty": 3})
        .run_step("b", ["not", "a", "dict"])
        .run_step("c", {"shipment": "s-1"})
        .complete()
    )


def with_retries() -> SagaBuilder:
    return (
        SagaBuilder()
        .start()
        .start_step("a")
        .fail_step("a", will_retry=True, retry_in=2.0)
        .start_step("a", attempt=2)
        .fail_step("a", attempt=2, will_retry=True, retry_in=4.0)
        .start_step("a", attempt=3)
        .finish_step("a", attempt=3)
        .run_step("b")
        .run_step("c")
        .complete()
    )


def failure_and_lifo_compensation() -> SagaBuilder:
    return (
        SagaBuilder()
        .start()
        .run_step("a")
        .run_step("b")
        .start_step("c")
        .fail_step("c")
        .fail("c")
        .begin_compensation("failed")
        .compensate("b")
        .compensate("a")
        .finish_compensation("failed")
    )


def cancel_while_running() -> SagaBuilder:
    """a done, b in flight when the operator cancels; b finishes, then both are undone."""
    return (
        SagaBuilder()
        .start()
        .run_step("a")
        .start_step("b")
        .cancel()
        .begin_compensation("cancelled")
        .finish_step("b")
        .compensate("b")
        .compensate("a")
        .finish_compensation("cancelled")
    )


def timeout_with_uncertain_step() -> SagaBuilder:
    """a done; b's first attempt timed out (effect unknown) and waits for a retry when the deadline hits."""
    return (
        SagaBuilder()
        .start()
        .run_step("a")
        .start_step("b")
        .fail_step("b", will_retry=True, retry_in=5.0, uncertain=True, error_type="StepTimeout")
        .time_out()
        .begin_compensation("timeout")
    )


def operator_retry() -> SagaBuilder:
    """b's and a's compensations fail; the operator retries both; they then succeed, b first."""
    return (
        failure_until_compensating()
        .fail_compensation("b")
        .fail_compensation("a")
        .finish_compensation("failed")
        .retry_compensation(["a", "b"])
        .compensate("b")
        .compensate("a")
        .finish_compensation("failed")
    )


def failure_until_compensating() -> SagaBuilder:
    return (
        SagaBuilder().start().run_step("a").run_step("b").start_step("c").fail_step("c").fail("c").begin_compensation()
    )


def paused_and_resumed() -> SagaBuilder:
    return SagaBuilder().start().run_step("a").pause().resume().run_step("b").run_step("c").complete()


def parallel() -> SagaBuilder:
    return (
        SagaBuilder(fan_out_plan())
        .start()
        .run_step("a")
        .start_step("b")
        .start_step("c")
        .finish_step("c")
        .finish_step("b")
        .run_step("d")
        .complete()
    )


def compensation_retry_then_park() -> SagaBuilder:
    s = failure_until_compensating().fail_compensation("b", will_retry=True, retry_in=1.0).compensate("b", attempt=2)
    s.record(ev.CompensationTimeout(WID, s.tick(), 130.0, 60.0))
    s.record(ev.CompensationParked(WID, s.tick(), "a", "call the floor"))
    return s.finish_compensation("failed")


STORIES: dict[str, Callable[[], SagaBuilder]] = {
    "happy-path": happy_path,
    "retries": with_retries,
    "failure-lifo-compensation": failure_and_lifo_compensation,
    "cancel-while-running": cancel_while_running,
    "timeout-uncertain-step": timeout_with_uncertain_step,
    "operator-retry": operator_retry,
    "pause-resume": paused_and_resumed,
    "parallel": parallel,
    "compensation-retry-timeout-park": compensation_retry_then_park,
}


# ---------------------------------------------------------------------------------------------- happy path
def test_created_instance_takes_everything_from_the_event() -> None:
    inst = SagaBuilder(input={"order_id": "o-7"}).inst
    assert inst.status is WorkflowStatus.CREATED
    assert (inst.workflow_id, inst.workflow_type, inst.definition_version) == (WID, "order-fulfillment", 1)
    assert [s.step_id for s in inst.steps] == ["a", "b", "c"]
    assert [s.depends_on for s in inst.steps] == [[], ["a"], ["b"]]
    assert all(s.status is StepStatus.PENDING for s in inst.steps)
    assert inst.context.variables == {"order_id": "o-7"}
    assert inst.context.headers == {"x-tenant": "t1"}
    assert inst.deadline == T0 + 1800.0
    assert inst.version == 1


def test_happy_path_status_variables_and_stack() -> None:
    saga = happy_path()
    inst = saga.inst
    assert inst.status is WorkflowStatus.COMPLETED
    assert statuses(saga) == dict.fromkeys("abc", StepStatus.COMPLETED)
    # dict outputs merged into the variables (later wins), other outputs kept on the step only
    assert inst.context.variables == {"order_id": "o-1", "qty": 3, "reservation": "r-1", "shipment": "s-1"}
    assert inst.step("b").output == ["not", "a", "dict"]
    assert inst.input == {"order_id": "o-1", "qty": 2}  # the original input is not overwritten
    assert inst.compensation_stack == ["a", "b", "c"]
    assert [inst.step(s).completed_seq for s in "abc"] == [1, 2, 3]
    assert inst.result == {"ok": True}
    assert inst.finished_at == saga.now
    assert inst.version == len(saga.events)


def test_each_step_records_its_attempt_and_key() -> None:
    saga = SagaBuilder().start().start_step("a")
    step = saga.inst.step("a")
    assert (step.status, step.attempt, step.idempotency_key, step.started_at) == (
        StepStatus.RUNNING,
        1,
        f"{WID}:a",
        saga.now,
    )


def test_saga_state_view() -> None:
    saga = SagaBuilder().start().run_step("a").run_step("b")
    state = saga.inst.saga_state
    assert state.phase is SagaPhase.FORWARD
    assert (state.current_step, state.total_steps) == (1, 3)
    assert state.completed_steps == ["a", "b"]
    assert state.pending_steps == ["c"]
    assert state.can_proceed()


def test_retries_count_and_keep_the_next_attempt_time() -> None:
    saga = SagaBuilder().start().start_step("a").fail_step("a", will_retry=True, retry_in=2.0)
    step = saga.inst.step("a")
    assert (step.status, step.next_attempt_at) == (StepStatus.WAITING_RETRY, saga.now + 2.0)
    assert step.error == {"type": "StepError", "message": "a broke"}
    assert saga.inst.total_retries == 1
    saga.start_step("a", attempt=2)
    assert saga.inst.step("a").next_attempt_at is None


def test_with_retries_completes() -> None:
    saga = with_retries()
    assert saga.inst.status is WorkflowStatus.COMPLETED
    assert saga.inst.total_retries == 2
    assert saga.inst.step("a").attempt == 3


# ---------------------------------------------------------------------------------------------- compensation
def test_failure_compensates_completed_steps_in_lifo_order() -> None:
    saga = failure_until_compensating()
    assert saga.inst.status is WorkflowStatus.COMPENSATING
    assert saga.inst.compensation_stack == ["a", "b"]
    started = next(e for e in saga.events if isinstance(e, ev.CompensationStarted))
    assert started.steps_to_compensate == ["b", "a"]
    # the top must go first: compensating a while b is on top is refused
    with pytest.raises(IllegalTransition):
        saga.inst.record(ev.CompensationStepStarted(WID, saga.tick(), "a", 1, "undo", "k"))


def test_failure_story_ends_compensated_without_attention() -> None:
    saga = failure_and_lifo_compensation()
    inst = saga.inst
    assert inst.status is WorkflowStatus.COMPENSATED
    assert statuses(saga) == {"a": StepStatus.COMPENSATED, "b": StepStatus.COMPENSATED, "c": StepStatus.FAILED}
    assert inst.compensation_stack == []
    assert (inst.requires_attention, inst.failed_compensations) == (False, [])
    assert inst.reason == "step c failed"
    compensated = [e.step_id for e in saga.events if isinstance(e, ev.StepCompensated)]
    assert compensated == ["b", "a"]


def test_lifo_follows_completion_order_not_declaration_order() -> None:
    saga = SagaBuilder(fan_out_plan()).start().run_step("a").start_step("b").start_step("c").finish_step("c")
    saga.finish_step("b").start_step("d").fail_step("d").fail("d").begin_compensation()
    assert saga.inst.compensation_stack == ["a", "c", "b"]


def test_compensation_deadline_and_forward_time_are_recorded() -> None:
    saga = failure_until_compensating()
    inst = saga.inst
    started = saga.events[-1]
    assert isinstance(started, ev.CompensationStarted)
    assert inst.compensation_deadline == started.compensation_deadline
    assert inst.forward_time == started.at - inst.started_at


def test_cancel_while_running_compensates_the_in_flight_step_too() -> None:
    saga = cancel_while_running()
    inst = saga.inst
    assert inst.status is WorkflowStatus.COMPENSATED
    assert inst.reason == "cancelled"
    assert [e.step_id for e in saga.events if isinstance(e, ev.StepCompensated)] == ["b", "a"]


def test_timeout_pushes_the_uncertain_waiting_step_on_the_stack() -> None:
    saga = timeout_with_uncertain_step()
    inst = saga.inst
    assert inst.status is WorkflowStatus.COMPENSATING
    assert inst.compensation_stack == ["a", "b"]  # b on top: compensated first
    assert inst.step("b").status is StepStatus.FAILED
    assert inst.step("b").next_attempt_at is None
    assert inst.step("c").status is StepStatus.PENDING
    assert inst.reason.startswith("workflow deadline passed after ")


def test_a_certain_waiting_step_is_not_compensated_on_timeout() -> None:
    saga = SagaBuilder().start().run_step("a").start_step("b").fail_step("b", will_retry=True, retry_in=5.0)
    saga.time_out().begin_compensation("timeout")
    assert saga.inst.compensation_stack == ["a"]
    assert saga.inst.step("b").status is StepStatus.FAILED


def test_stack_when_compensating_predicts_compensation_started() -> None:
    saga = SagaBuilder().start().run_step("a").start_step("b")
    saga.fail_step("b", will_retry=True, retry_in=5.0, uncertain=True).time_out()
    predicted = saga.inst.stack_when_compensating()
    saga.begin_compensation("timeout")
    assert predicted == saga.inst.compensation_stack == ["a", "b"]


def test_uncertain_final_failure_is_pushed_at_once() -> None:
    saga = SagaBuilder().start().run_step("a").start_step("b")
    saga.fail_step("b", uncertain=True, error_type="StepInterrupted")
    assert saga.inst.compensation_stack == ["a", "b"]


def test_failed_compensation_is_recorded_and_the_rest_still_run() -> None:
    saga = failure_until_compensating().fail_compensation("b")
    inst = saga.inst
    assert inst.step("b").status is StepStatus.COMPENSATION_FAILED
    assert inst.step("b").comp_error == {"type": "StepError", "message": "undo broke"}
    assert inst.failed_compensations == ["b"]
    assert inst.compensation_stack == ["a"]
    saga.compensate("a").finish_compensation()
    assert (inst.status, inst.requires_attention, inst.failed_compensations) == (
        WorkflowStatus.COMPENSATED,
        True,
        ["b"],
    )


def test_compensation_retry_keeps_the_step_on_top() -> None:
    saga = failure_until_compensating().fail_compensation("b", will_retry=True, retry_in=3.0)
    step = saga.inst.step("b")
    assert saga.inst.compensation_stack == ["a", "b"]
    assert (step.comp_next_attempt_at, step.comp_running) == (saga.now + 3.0, False)
    assert saga.inst.compensation_retries == 1


def test_parked_compensation_requires_attention() -> None:
    saga = failure_until_compensating().compensate("b")
    saga.record(ev.CompensationParked(WID, saga.tick(), "a", "call the floor"))
    saga.finish_compensation()
    assert saga.inst.step("a").status is StepStatus.COMPENSATION_PARKED
    assert (saga.inst.requires_attention, saga.inst.failed_compensations) == (True, ["a"])


def test_operator_retry_reopens_and_repushes_in_lifo_order() -> None:
    saga = (
        failure_until_compensating()
        .fail_compensation("b")
        .fail_compensation("a")
        .finish_compensation()
        .retry_compensation(["a", "b"])
    )
    inst = saga.inst
    assert inst.status is WorkflowStatus.COMPENSATING
    assert inst.compensation_stack == ["a", "b"]  # b completed last, so it is undone first again
    assert [inst.step(s).status for s in "ab"] == [StepStatus.COMPLETED, StepStatus.COMPLETED]
    assert inst.finished_at is None
    assert inst.compensation_reason == "operator retry"
    assert inst.compensation_deadline is not None and inst.compensation_deadline > saga.now
    assert inst.compensation_timed_out is False


@pytest.mark.parametrize("order", [["a", "b"], ["b", "a"]])
def test_operator_retry_order_does_not_depend_on_the_request_order(order) -> None:
    saga = failure_until_compensating().fail_compensation("b").fail_compensation("a").finish_compensation()
    saga.retry_compensation(order)
    assert saga.inst.compensation_stack == ["a", "b"]


def test_operator_retry_of_one_step_leaves_the_others() -> None:
    saga = failure_until_compensating().fail_compensation("b").fail_compensation("a").finish_compensation()
    saga.retry_compensation(["b"]).compensate("b").finish_compensation()
    assert saga.inst.status is WorkflowStatus.COMPENSATED
    assert saga.inst.failed_compensations == ["a"]
    assert saga.inst.requires_attention is True


def test_operator_retry_story_ends_clean() -> None:
    inst = operator_retry().inst
    assert inst.status is WorkflowStatus.COMPENSATED
    assert (inst.requires_attention, inst.failed_compensations) == (False, [])
    assert [inst.step(s).comp_operator_retry for s in "ab"] == [True, True]


# ---------------------------------------------------------------------------------------------- replay
@pytest.mark.parametrize("story", STORIES.values(), ids=STORIES.keys())
def test_replay_rebuilds_exactly_the_same_state(story) -> None:
    saga = story()
    assert WorkflowInstance.replay(saga.events).to_dict() == saga.inst.to_dict()


@pytest.mark.parametrize("story", STORIES.values(), ids=STORIES.keys())
def test_replay_of_stored_events_rebuilds_the_same_state(story) -> None:
    saga = story()
    assert WorkflowInstance.replay(json_roundtrip(saga.events)).to_dict() == saga.inst.to_dict()


@pytest.mark.parametrize("story", STORIES.values(), ids=STORIES.keys())
def test_every_prefix_replays_to_the_state_at_that_point(story) -> None:
    saga = story()
    live = WorkflowInstance()
    for i, event in enumerate(saga.events, 1):
        live.apply(event)
        assert WorkflowInstance.replay(saga.events[:i]).to_dict() == live.to_dict()


@pytest.mark.parametrize("story", STORIES.values(), ids=STORIES.keys())
def test_snapshot_round_trips_exactly(story) -> None:
    snap = story().inst.to_dict()
    assert WorkflowInstance.from_dict(snap).to_dict() == snap


@pytest.mark.parametrize("story", STORIES.values(), ids=STORIES.keys())
def test_snapshot_round_trips_through_json(story) -> None:
    snap = json.loads(json.dumps(story().inst.to_dict()))
    assert WorkflowInstance.from_dict(snap).to_dict() == snap


def test_instance_restored_from_a_snapshot_keeps_working() -> None:
    saga = SagaBuilder().start().run_step("a")
    restored = WorkflowInstance.from_dict(json.loads(json.dumps(saga.inst.to_dict())))
    restored.record(ev.StepStarted(WID, saga.tick(), "b", 1, "k", {}))
    assert restored.step("b").status is StepStatus.RUNNING
    assert restored.version == saga.inst.version + 1


def test_record_keeps_pending_events_until_taken() -> None:
    saga = SagaBuilder().start()
    assert saga.inst.take_pending() == saga.events
    assert saga.inst.pending == []


# ---------------------------------------------------------------------------------------------- bugs
def test_operator_retry_keeps_an_uncertain_step_on_top() -> None:
    saga = timeout_with_uncertain_step()  # stack: a, b (b uncertain, on top)
    saga.fail_compensation("b").fail_compensation("a").finish_compensation("timeout")
    saga.retry_compensation(["a", "b"])
    assert saga.inst.compensation_stack == ["a", "b"]


def test_operator_retry_with_a_repeated_step_pushes_it_once() -> None:
    saga = failure_until_compensating().fail_compensation("b").compensate("a").finish_compensation()
    try:
        saga.retry_compensation(["b", "b"])
    except IllegalTransition:
        return  # refusing the request is fine too
    assert saga.inst.compensation_stack == ["b"]


def test_uncertain_step_failing_during_compensation_is_compensated() -> None:
    saga = SagaBuilder().start().run_step("a").start_step("b").cancel().begin_compensation("cancelled")
    try:
        saga.fail_step("b", will_retry=True, retry_in=1.0, uncertain=True, error_type="StepTimeout")
    except IllegalTransition:
        return  # refusing a retry while compensating is fine too
    assert saga.inst.compensation_stack == ["a", "b"]


def test_snapshot_is_not_changed_by_later_events() -> None:
    saga = SagaBuilder().start().start_step("a")
    snap = saga.inst.to_dict()
    saga.finish_step("a", output={"reservation": "r-1"})
    assert "reservation" not in snap["context"]["variables"]
