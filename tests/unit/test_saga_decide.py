"""``engine.domain.saga.decide``: what a saga does next, from its state, the clock and what is in flight."""

from __future__ import annotations

import pytest

from engine.domain import events as ev
from engine.domain.saga import Action, decide
from tests.unit.factories import T0, WID, SagaBuilder, fan_out_plan, plan_step

DEADLINE = T0 + 1800.0


def running(steps=("a", "b", "c")) -> SagaBuilder:
    return SagaBuilder(steps).start()


# ---------------------------------------------------------------------------------------------- forward
def test_created_starts() -> None:
    assert decide(SagaBuilder().inst, T0).action is Action.START


def test_created_past_its_deadline_still_starts_to_time_out_through_running() -> None:
    assert decide(SagaBuilder().inst, DEADLINE + 5).action is Action.START


def test_first_ready_step_runs() -> None:
    saga = running()
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.RUN, ("a",))


def test_next_sequential_step_runs_after_its_predecessor() -> None:
    saga = running().run_step("a")
    assert decide(saga.inst, saga.now).steps == ("b",)


def test_independent_roots_run_together_in_declared_order() -> None:
    saga = running([plan_step("z"), plan_step("y"), plan_step("x", ["z", "y"])])
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.RUN, ("z", "y"))


def test_two_steps_depending_on_the_same_parent_both_run() -> None:
    saga = running(fan_out_plan()).run_step("a")
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.RUN, ("b", "c"))


def test_ready_branch_runs_while_another_is_in_flight() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b")
    d = decide(saga.inst, saga.now, inflight={"b"})
    assert (d.action, d.steps) == (Action.RUN, ("c",))


def test_join_waits_for_all_its_dependencies() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b").start_step("c").finish_step("c")
    d = decide(saga.inst, saga.now, inflight={"b"})
    assert d.action is Action.WAIT_INFLIGHT
    assert d.until == DEADLINE


def test_in_flight_step_is_waited_for() -> None:
    saga = running().start_step("a")
    d = decide(saga.inst, saga.now, inflight={"a"})
    assert (d.action, d.until) == (Action.WAIT_INFLIGHT, DEADLINE)


def test_waiting_retry_in_the_future_waits_until_it_is_due() -> None:
    saga = running().start_step("a").fail_step("a", will_retry=True, retry_in=10.0)
    due = saga.now + 10.0
    d = decide(saga.inst, saga.now)
    assert (d.action, d.until) == (Action.WAIT, due)


def test_waiting_retry_beyond_the_deadline_waits_only_until_the_deadline() -> None:
    saga = SagaBuilder(timeout=20.0).start().start_step("a").fail_step("a", will_retry=True, retry_in=60.0)
    d = decide(saga.inst, saga.now)
    assert (d.action, d.until) == (Action.WAIT, T0 + 20.0)


def test_earliest_of_several_retries_is_awaited() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b").start_step("c")
    saga.fail_step("b", will_retry=True, retry_in=30.0).fail_step("c", will_retry=True, retry_in=5.0)
    d = decide(saga.inst, saga.now)
    assert (d.action, d.until) == (Action.WAIT, saga.now + 5.0)  # c's retry: 5 s after its failure (now)


def test_in_flight_and_retry_waits_until_the_retry() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b").start_step("c")
    saga.fail_step("c", will_retry=True, retry_in=5.0)
    d = decide(saga.inst, saga.now, inflight={"b"})
    assert (d.action, d.until) == (Action.WAIT_INFLIGHT, saga.now + 5.0)


@pytest.mark.parametrize("late", [0.0, 3.0])
def test_due_retry_runs(late) -> None:
    saga = running().start_step("a").fail_step("a", will_retry=True, retry_in=10.0)
    d = decide(saga.inst, saga.now + 10.0 + late)
    assert (d.action, d.steps) == (Action.RUN, ("a",))


def test_running_step_not_in_flight_is_recovered() -> None:
    saga = running().start_step("a")
    d = decide(saga.inst, saga.now, inflight=())
    assert (d.action, d.steps) == (Action.RECOVER, ("a",))


def test_only_the_interrupted_branch_is_recovered() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b").start_step("c")
    d = decide(saga.inst, saga.now, inflight={"c"})
    assert (d.action, d.steps) == (Action.RECOVER, ("b",))


def test_failed_step_fails_the_workflow() -> None:
    saga = running().run_step("a").start_step("b").fail_step("b")
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.FAIL, ("b",))
    assert d.reason == "step b failed: b broke"


def test_failed_step_waits_for_in_flight_branches_first() -> None:
    saga = running(fan_out_plan()).run_step("a").start_step("b").start_step("c").fail_step("c")
    d = decide(saga.inst, saga.now, inflight={"b"})
    assert d.action is Action.WAIT_INFLIGHT
    assert decide(saga.finish_step("b").inst, saga.now).action is Action.FAIL


def test_all_steps_completed_completes() -> None:
    saga = running().run_step("a").run_step("b").run_step("c")
    assert decide(saga.inst, saga.now).action is Action.COMPLETE


def test_step_whose_dependency_can_never_complete_fails_the_workflow() -> None:
    # A plan whose dependency is not one of its steps (defence in depth: definitions reject it).
    saga = running([plan_step("a"), plan_step("b", ["a"])])
    saga.inst.steps[1].depends_on = ["b"]  # b waits for itself: never runnable
    saga.run_step("a")
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.FAIL, ("b",))


# ---------------------------------------------------------------------------------------------- deadline
@pytest.mark.parametrize("after", [0.0, 0.001, 100.0])
def test_deadline_times_out_a_running_saga(after) -> None:
    saga = running().run_step("a")
    assert decide(saga.inst, DEADLINE + after).action is Action.TIMEOUT


def test_deadline_times_out_with_the_in_flight_steps() -> None:
    saga = running().start_step("a")
    d = decide(saga.inst, DEADLINE, inflight={"a"})
    assert (d.action, d.steps) == (Action.TIMEOUT, ("a",))


def test_deadline_times_out_a_paused_saga() -> None:
    saga = running().run_step("a").pause()
    assert decide(saga.inst, DEADLINE).action is Action.TIMEOUT


def test_deadline_wins_over_ready_steps_and_retries() -> None:
    saga = running().start_step("a").fail_step("a", will_retry=True, retry_in=1.0)
    assert decide(saga.inst, DEADLINE).action is Action.TIMEOUT


def test_just_before_the_deadline_is_not_a_timeout() -> None:
    saga = running()
    assert decide(saga.inst, DEADLINE - 0.001).action is Action.RUN


# ---------------------------------------------------------------------------------------------- paused
def test_paused_waits_until_the_deadline() -> None:
    saga = running().run_step("a").pause()
    d = decide(saga.inst, saga.now)
    assert (d.action, d.until) == (Action.WAIT, DEADLINE)


def test_paused_with_a_step_in_flight_waits_for_it() -> None:
    saga = running().start_step("a").pause()
    d = decide(saga.inst, saga.now, inflight={"a"})
    assert (d.action, d.until) == (Action.WAIT_INFLIGHT, DEADLINE)


PAUSED_STATES = {
    "ready-step": lambda: running().run_step("a").pause(),
    "interrupted-step": lambda: running().start_step("a").pause(),
    "failed-step": lambda: running().start_step("a").pause().fail_step("a"),
    "due-retry": lambda: running().start_step("a").fail_step("a", will_retry=True, retry_in=0.0).pause(),
    "all-complete": lambda: running().run_step("a").run_step("b").run_step("c").pause(),
}


@pytest.mark.parametrize("make", PAUSED_STATES.values(), ids=PAUSED_STATES.keys())
def test_paused_never_runs_recovers_fails_or_completes(make) -> None:
    saga = make()
    d = decide(saga.inst, saga.now + 1.0)
    assert d.action is Action.WAIT
    assert d.until == DEADLINE


def test_resume_lets_the_ready_step_run() -> None:
    saga = running().run_step("a").pause().resume()
    assert decide(saga.inst, saga.now).steps == ("b",)


# ---------------------------------------------------------------------------------------------- backward
def compensating() -> SagaBuilder:
    """a, b done; c failed; compensation began with a 60 s budget (stack a, b)."""
    saga = running().run_step("a").run_step("b").start_step("c").fail_step("c").fail("c")
    return saga.begin_compensation("failed", budget=60.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: running().start_step("a").fail_step("a").fail("a"),
        lambda: running().run_step("a").time_out(),
    ],
    ids=["FAILED", "TIMEOUT"],
)
def test_failed_or_timed_out_begins_compensation(make) -> None:
    assert decide(make().inst, T0 + 10).action is Action.BEGIN_COMPENSATION


def test_compensating_compensates_the_top_of_the_stack() -> None:
    saga = compensating()
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.COMPENSATE, ("b",))
    saga.compensate("b")
    assert decide(saga.inst, saga.now).steps == ("a",)


def test_empty_stack_finishes_compensation() -> None:
    saga = compensating().compensate("b").compensate("a")
    assert decide(saga.inst, saga.now).action is Action.FINISH_COMPENSATION


def test_nothing_to_compensate_finishes_at_once() -> None:
    saga = running().start_step("a").fail_step("a").fail("a").begin_compensation()
    assert decide(saga.inst, saga.now).action is Action.FINISH_COMPENSATION


def test_past_the_compensation_deadline_flags_it_once() -> None:
    saga = compensating()
    late = saga.inst.compensation_deadline + 1.0
    assert decide(saga.inst, late).action is Action.COMPENSATION_TIMEOUT
    saga.record(ev.CompensationTimeout(WID, late, 61.0, 60.0))
    d = decide(saga.inst, late + 1.0)
    assert (d.action, d.steps) == (Action.COMPENSATE, ("b",))


def test_overrun_in_the_last_compensation_is_flagged_before_finishing() -> None:
    saga = compensating().compensate("b").compensate("a")
    late = saga.inst.compensation_deadline + 1.0
    assert decide(saga.inst, late).action is Action.COMPENSATION_TIMEOUT
    saga.record(ev.CompensationTimeout(WID, late, 61.0, 60.0))
    assert decide(saga.inst, late).action is Action.FINISH_COMPENSATION


def test_compensation_within_its_budget_finishes() -> None:
    saga = compensating().compensate("b").compensate("a")
    assert decide(saga.inst, saga.inst.compensation_deadline).action is Action.FINISH_COMPENSATION


def test_compensation_retry_in_the_future_waits() -> None:
    saga = compensating().fail_compensation("b", will_retry=True, retry_in=5.0)
    d = decide(saga.inst, saga.now)
    assert (d.action, d.until) == (Action.WAIT, saga.now + 5.0)


def test_compensation_retry_wait_is_cut_at_the_compensation_deadline() -> None:
    saga = compensating().fail_compensation("b", will_retry=True, retry_in=500.0)
    d = decide(saga.inst, saga.now)
    assert d.action is Action.WAIT
    assert saga.inst.compensation_deadline < d.until <= saga.inst.compensation_deadline + 0.01


def test_due_compensation_retry_compensates() -> None:
    saga = compensating().fail_compensation("b", will_retry=True, retry_in=5.0)
    d = decide(saga.inst, saga.now + 5.0)
    assert (d.action, d.steps) == (Action.COMPENSATE, ("b",))


def test_interrupted_compensation_is_run_again() -> None:
    saga = compensating().start_compensation_step("b")
    assert decide(saga.inst, saga.now).steps == ("b",)


def test_cancel_mid_step_waits_for_the_step_before_compensating() -> None:
    saga = running().run_step("a").start_step("b").cancel().begin_compensation("cancelled")
    assert decide(saga.inst, saga.now, inflight={"b"}).action is Action.WAIT_INFLIGHT
    d = decide(saga.inst, saga.now, inflight=())
    assert (d.action, d.steps) == (Action.RECOVER, ("b",))


def test_in_flight_step_that_finished_during_compensation_is_undone_first() -> None:
    saga = running().run_step("a").start_step("b").cancel().begin_compensation("cancelled").finish_step("b")
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.COMPENSATE, ("b",))


def test_operator_retry_compensates_again() -> None:
    saga = compensating().fail_compensation("b").compensate("a").finish_compensation().retry_compensation(["b"])
    d = decide(saga.inst, saga.now)
    assert (d.action, d.steps) == (Action.COMPENSATE, ("b",))


# ---------------------------------------------------------------------------------------------- terminal
TERMINAL = {
    "COMPLETED": lambda: running().run_step("a").run_step("b").run_step("c").complete(),
    "CANCELLED": lambda: SagaBuilder().cancel(),
    "COMPENSATED": lambda: compensating().compensate("b").compensate("a").finish_compensation(),
}


@pytest.mark.parametrize("make", TERMINAL.values(), ids=TERMINAL.keys())
def test_terminal_is_done(make) -> None:
    saga = make()
    assert decide(saga.inst, saga.now).action is Action.DONE
    assert decide(saga.inst, DEADLINE + 1e6, inflight={"a"}).action is Action.DONE
