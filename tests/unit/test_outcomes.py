"""``engine.domain.outcomes``: the events that follow a decision or an attempt's result. Pure: no I/O."""

from __future__ import annotations

import random

import pytest

from engine.domain import events as ev
from engine.domain import outcomes
from engine.domain.definition import StepDefinition, parse_definition
from engine.domain.outcomes import AttemptResult
from engine.domain.policies import ActionRef, CompensationAction
from engine.domain.status import CompensationType, StepStatus
from tests.unit.factories import T0, WID, SagaBuilder, fan_out_plan, plan_step, step_dict

UNDO = "examples.warehouse:undo"
ALT = "examples.warehouse:alt"


def steps(**per_step: dict) -> dict[str, StepDefinition]:
    """Step definitions a, b, c (and d) with per-step overrides of the definition's fields."""
    ids = ["a", "b", "c", "d"]
    data = {"name": "order-fulfillment", "version": 1, "steps": [step_dict(i, **per_step.get(i, {})) for i in ids]}
    return {s.id: s for s in parse_definition(data).steps}


def failure(error_type: str = "StepError", **kw) -> AttemptResult:
    return AttemptResult.failure(error_type, f"{error_type} happened", elapsed=0.5, **kw)


def running_step(sid: str = "a", attempt: int = 1) -> SagaBuilder:
    saga = SagaBuilder().start()
    for earlier in ("a", "b", "c")[: ("a", "b", "c").index(sid)]:
        saga.run_step(earlier)
    if attempt > 1:
        saga.start_step(sid, 1).fail_step(sid, 1, will_retry=True, retry_in=0.0)
        for n in range(2, attempt):
            saga.start_step(sid, n).fail_step(sid, n, will_retry=True, retry_in=0.0)
    return saga.start_step(sid, attempt)


# ---------------------------------------------------------------------------------------------- forward
RETRY_TABLE = [
    # (case, step overrides, attempt, result, will_retry, delay after the failure)
    ("retryable, attempts left", {}, 1, failure(), True, 1.0),
    ("second retry doubles (exponential)", {}, 2, failure(), True, 2.0),
    ("last attempt", {}, 3, failure(), False, None),
    ("error says not retryable", {}, 1, failure(retryable=False), False, None),
    ("policy lists it non-retryable", {"retry": {"non_retryable_errors": ["Declined"]}}, 1, failure("Declined"), False, None),
    ("not in the policy's retryable list", {"retry": {"retryable_errors": ["Timeout"]}}, 1, failure("Declined"), False, None),
    ("retryable by a base class name", {"retry": {"retryable_errors": ["IOError"]}}, 1,
     failure("ReadError", mro=("ReadError", "IOError")), True, 1.0),
    ("an open breaker's trial comes later than the backoff", {}, 1, failure(retry_after=7.5), True, 7.5),
    ("backoff later than the breaker's trial", {"retry": {"initial_delay": 9}}, 1, failure(retry_after=2.0), True, 9.0),
    ("linear backoff", {"retry": {"backoff": "LINEAR", "initial_delay": 3, "increment": 2}}, 2, failure(), True, 5.0),
    ("fibonacci backoff", {"retry": {"backoff": "FIBONACCI", "initial_delay": 1, "max_attempts": 6}}, 4, failure(),
     True, 3.0),
    ("capped at max_delay", {"retry": {"initial_delay": 50, "max_delay": 60, "max_attempts": 5}}, 3, failure(), True,
     60.0),
    ("one attempt only", {"retry": {"max_attempts": 1}}, 1, failure(), False, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "overrides", "attempt", "result", "will_retry", "delay"), RETRY_TABLE)
def test_a_failed_attempt_retries_by_the_steps_policy(case, overrides, attempt, result, will_retry, delay) -> None:
    saga = running_step("a", attempt)
    (event,) = outcomes.on_step_outcome(saga.inst, steps(a=overrides)["a"], result, saga.now, random.Random(1))
    assert isinstance(event, ev.StepFailed), case
    assert (event.step_id, event.attempt, event.will_retry) == ("a", attempt, will_retry), case
    assert event.next_attempt_at == (None if delay is None else pytest.approx(saga.now + delay)), case
    assert (event.error_type, event.reason, event.execution_time) == (result.error_type, result.message, 0.5)


def test_success_records_the_output_and_time() -> None:
    saga = running_step("b")
    (event,) = outcomes.on_step_outcome(
        saga.inst, steps()["b"], AttemptResult.success({"picked": 3}, 0.25), saga.now, random.Random()
    )
    assert event == ev.StepExecuted(WID, saga.now, "b", 1, 0.25, {"picked": 3})


def test_a_timed_out_attempt_is_uncertain_and_may_retry() -> None:
    saga = running_step("a")
    (event,) = outcomes.on_step_outcome(saga.inst, steps()["a"], failure("StepTimeout"), saga.now, random.Random())
    assert event.uncertain and event.will_retry


def test_no_retry_once_the_saga_compensates() -> None:
    """A cancel arrived while the step ran: its failure is final, whatever the policy."""
    saga = running_step("b").cancel().begin_compensation("cancelled")
    (event,) = outcomes.on_step_outcome(saga.inst, steps()["b"], failure(), saga.now, random.Random())
    assert not event.will_retry


def test_a_paused_saga_still_schedules_its_retry() -> None:
    saga = running_step("a").pause()
    (event,) = outcomes.on_step_outcome(saga.inst, steps()["a"], failure(), saga.now, random.Random())
    assert event.will_retry


def test_a_result_for_a_step_no_longer_running_is_dropped() -> None:
    saga = running_step("a").fail_step("a")
    assert outcomes.on_step_outcome(saga.inst, steps()["a"], AttemptResult.success(), saga.now, random.Random()) == []


def test_jitter_comes_from_the_given_rng() -> None:
    saga = running_step("a")
    step = steps(a={"retry": {"jitter": 0.5}})["a"]
    first = outcomes.on_step_outcome(saga.inst, step, failure(), saga.now, random.Random(7))[0].next_attempt_at
    again = outcomes.on_step_outcome(saga.inst, step, failure(), saga.now, random.Random(7))[0].next_attempt_at
    assert first == again
    assert saga.now + 1.0 <= first <= saga.now + 1.5


def test_a_custom_backoff_is_the_function_passed_in() -> None:
    saga = running_step("a", 2)
    step = steps(a={"retry": {"backoff": "CUSTOM", "custom": "tests.handlers:backoff"}})["a"]
    (event,) = outcomes.on_step_outcome(saga.inst, step, failure(), saga.now, random.Random(), lambda n, i, m: 10 * n)
    assert event.next_attempt_at == pytest.approx(saga.now + 20)


def test_starting_steps_gives_each_its_next_attempt_and_the_context_as_input() -> None:
    saga = SagaBuilder(fan_out_plan(), input={"order_id": "o-9"}).start().run_step("a", {"reserved": True})
    started = outcomes.start_steps(saga.inst, steps(), ("b", "c"), saga.now, fence=4)
    assert [(e.step_id, e.attempt) for e in started] == [("b", 1), ("c", 1)]
    assert all(e.input == {"order_id": "o-9", "reserved": True} for e in started)
    assert started[0].idempotency_key == f"{WID}:b:1:4"  # AT_LEAST_ONCE: one key per execution


KEY_TABLE = [
    # (consistency, template, phase, expected)
    ("AT_LEAST_ONCE", None, "", f"{WID}:a:2:7"),
    ("EVENTUAL", None, "compensate", f"{WID}:a:compensate:2:7"),
    ("EXACTLY_ONCE", None, "", f"{WID}:a"),
    ("STRICT", None, "compensate", f"{WID}:a:compensate"),
    ("AT_LEAST_ONCE", "order-{order_id}-{step_id}", "", "order-o-1-a"),
    ("EXACTLY_ONCE", "order-{missing}", "compensate", f"{WID}:a:compensate"),
]


@pytest.mark.parametrize(("consistency", "template", "phase", "expected"), KEY_TABLE)
def test_idempotency_keys(consistency, template, phase, expected) -> None:
    saga = SagaBuilder()
    saga.inst.consistency = type(saga.inst.consistency)(consistency)
    step = steps(a={"idempotency_key": template} if template else {})["a"]
    assert outcomes.idempotency_key(saga.inst, step, 2, 7, phase) == expected


# ---------------------------------------------------------------------------------------------- recovery
def test_an_interrupted_idempotent_step_runs_again() -> None:
    saga = running_step("b")
    recovery = outcomes.recover_interrupted(saga.inst, steps(), ["b"], saga.now, fence=2)
    assert recovery.rerun == "b"
    (event,) = recovery.events
    assert (event.step_id, event.attempt, event.recovered, event.input) == ("b", 1, True, {"attempt": 1})


def test_an_interrupted_step_that_is_not_idempotent_fails_as_uncertain() -> None:
    saga = SagaBuilder([plan_step("a", idempotent=False)]).start().start_step("a")
    recovery = outcomes.recover_interrupted(saga.inst, steps(), ["a"], saga.now, fence=2)
    assert recovery.rerun is None
    (event,) = recovery.events
    assert (event.error_type, event.uncertain, event.will_retry) == ("StepInterrupted", True, False)
    assert "not idempotent" in event.reason


def test_an_interrupted_step_of_a_compensating_saga_is_not_rerun() -> None:
    saga = running_step("b").cancel().begin_compensation("cancelled")
    recovery = outcomes.recover_interrupted(saga.inst, steps(), ["b"], saga.now, fence=2)
    assert recovery.rerun is None
    assert "stopped moving forward" in recovery.events[0].reason


def test_recovery_fails_the_non_idempotent_then_reruns_the_first_idempotent() -> None:
    plan = [plan_step("a"), plan_step("b", ["a"], idempotent=False), plan_step("c", ["a"]), plan_step("d", ["a"])]
    saga = SagaBuilder(plan).start().run_step("a").start_step("b").start_step("c").start_step("d")
    recovery = outcomes.recover_interrupted(saga.inst, steps(), ["b", "c", "d"], saga.now, fence=2)
    assert [type(e).__name__ for e in recovery.events] == ["StepFailed", "StepStarted"]
    assert recovery.rerun == "c"  # d is recovered on the next pass


# ---------------------------------------------------------------------------------------------- ends
def test_fail_records_the_failure_and_the_compensation_stack_newest_first() -> None:
    saga = SagaBuilder().start().run_step("a").run_step("b").start_step("c").fail_step("c")
    failed, started = outcomes.fail(saga.inst, "c", "step c failed", saga.now)
    assert failed == ev.WorkflowFailed(WID, saga.now, "c", "step c failed")
    assert started.steps_to_compensate == ["b", "a"]
    forward = saga.now - saga.inst.started_at
    assert started.compensation_deadline == pytest.approx(saga.now + 2 * forward)


def test_the_compensation_budget_has_a_floor() -> None:
    saga = SagaBuilder().start()
    (started,) = outcomes.begin_compensation(saga.inst, saga.inst.started_at, "failed")
    assert started.compensation_deadline == saga.inst.started_at + 1.0


def test_a_floor_covering_a_recovery_is_granted_and_kept_when_the_deadline_moves() -> None:
    """A cancel mid-step rebases the deadline once the step ends: the floor still holds then."""
    saga = SagaBuilder(("a", "b")).start().run_step("a").start_step("b").cancel()
    (started,) = outcomes.begin_compensation(saga.inst, saga.now, "cancelled", floor=60.0)
    assert (started.budget_floor, started.compensation_deadline) == (60.0, saga.now + 60.0)
    saga.record(started)
    saga.finish_step("b")  # the forward step in flight ends: compensation really starts now
    assert saga.inst.compensation_deadline == pytest.approx(saga.now + 60.0)
    replayed = type(saga.inst).replay(saga.events)
    assert replayed.compensation_deadline == saga.inst.compensation_deadline
    assert type(saga.inst).from_dict(saga.inst.to_dict()).compensation_floor == 60.0


def test_timing_out_gives_up_the_steps_in_flight_and_compensates_them_too() -> None:
    saga = SagaBuilder(fan_out_plan()).start().run_step("a").start_step("b").start_step("c").finish_step("c")
    events = outcomes.time_out(saga.inst, {"b": False}, saga.now)
    assert [type(e).__name__ for e in events] == ["StepFailed", "WorkflowTimeout", "CompensationStarted"]
    given_up, timeout, started = events
    assert (given_up.step_id, given_up.error_type, given_up.uncertain, given_up.will_retry) == (
        "b",
        "StepTimeout",
        True,
        False,
    )
    assert timeout.last_executed_step == "c"
    assert started.steps_to_compensate == ["b", "c", "a"]
    for e in events:  # they apply, in order, to the instance they were computed from
        saga.record(e)
    assert saga.inst.status.value == "COMPENSATING"


def test_an_attempt_still_running_at_the_deadline_is_given_up_as_such() -> None:
    saga = SagaBuilder(fan_out_plan()).start().run_step("a").start_step("b").start_step("c")
    given_up_b, given_up_c, _timeout, started = outcomes.time_out(saga.inst, {"b": True, "c": False}, saga.now)
    assert (given_up_b.error_type, given_up_b.uncertain, given_up_b.will_retry) == ("AttemptStillRunning", True, False)
    assert "may still act" in given_up_b.reason
    assert given_up_c.error_type == "StepTimeout"
    assert started.steps_to_compensate == ["c", "b", "a"]


def test_an_attempt_still_running_is_final_whatever_the_policy() -> None:
    saga = running_step("a")
    (event,) = outcomes.on_step_outcome(
        saga.inst, steps()["a"], failure("AttemptStillRunning", retryable=False), saga.now, random.Random()
    )
    assert (event.will_retry, event.uncertain) == (False, True)


def test_completion_carries_every_step_output() -> None:
    saga = SagaBuilder(("a", "b")).start().run_step("a", {"x": 1}).run_step("b")
    (done,) = outcomes.complete(saga.inst, saga.now)
    assert done.result == {"a": {"x": 1}}
    assert done.metrics == saga.inst.metrics()


@pytest.mark.parametrize(
    ("failed_compensation", "overran", "attention"), [(False, False, False), (True, False, True), (False, True, True)]
)
def test_finishing_compensation_needs_attention_if_anything_failed_or_overran(
    failed_compensation, overran, attention
) -> None:
    saga = SagaBuilder(("a", "b")).start().run_step("a").run_step("b").cancel().begin_compensation("cancelled")
    if failed_compensation:
        saga.fail_compensation("b")
    else:
        saga.compensate("b")
    if overran:
        saga.record(outcomes.compensation_timeout(saga.inst, saga.tick(100))[0])
    saga.compensate("a")
    (done,) = outcomes.finish_compensation(saga.inst, saga.now)
    assert (done.requires_attention, done.failed_compensations, done.reason) == (
        attention,
        ["b"] if failed_compensation else [],
        "cancelled",
    )


def test_a_compensation_timeout_reports_elapsed_time_and_budget() -> None:
    saga = SagaBuilder(("a",)).start().run_step("a").cancel().begin_compensation(budget=60.0)
    started = saga.inst.compensation_started_at
    (event,) = outcomes.compensation_timeout(saga.inst, started + 75)
    assert (event.elapsed_time, event.budget) == (75, 60.0)


# ---------------------------------------------------------------------------------------------- compensation
def compensating(sid: str = "a", **overrides) -> tuple[SagaBuilder, StepDefinition]:
    """Step ``sid`` completed and on top of the stack of a compensating saga."""
    saga = SagaBuilder((sid,)).start().run_step(sid).cancel().begin_compensation("cancelled")
    return saga, steps(**{sid: overrides})[sid]


PLAN_TABLE = [
    # (case, compensation, prior: None | "failed-action" | "operator", expected kind, via, target)
    ("undo", {"action": UNDO}, None, "call", "action", UNDO),
    ("retry type calls the undo", {"type": "RETRY", "action": UNDO}, None, "call", "action", UNDO),
    ("alternative without undo", {"type": "ALTERNATIVE", "alternative": ALT}, None, "call", "alternative", ALT),
    ("alternative: undo first", {"type": "ALTERNATIVE", "action": UNDO, "alternative": ALT}, None, "call", "action",
     UNDO),
    ("alternative after the undo failed", {"type": "ALTERNATIVE", "action": UNDO, "alternative": ALT},
     "failed-action", "call", "alternative", ALT),
    ("manual parks", {"type": "MANUAL", "note": "call the carrier"}, None, "parked", "", None),
    ("manual with an action still parks", {"type": "MANUAL", "action": UNDO}, None, "parked", "", None),
    ("operator retry of manual without action", {"type": "MANUAL"}, "operator", "done", "operator", None),
    ("operator retry of manual with action", {"type": "MANUAL", "action": UNDO}, "operator", "call", "action", UNDO),
]  # fmt: skip


@pytest.mark.parametrize(("case", "comp", "prior", "kind", "via", "target"), PLAN_TABLE)
def test_how_the_top_of_the_stack_is_compensated(case, comp, prior, kind, via, target) -> None:
    saga, step = compensating("a", compensation=comp, timeout="20s")
    if prior == "failed-action":
        saga.record(ev.CompensationStepStarted(WID, saga.tick(), "a", 1, "action", "k"))
        saga.record(ev.CompensationFailed(WID, saga.tick(), "a", 1, "undo broke", "StepError", True, saga.now))
    if prior == "operator":
        saga.record(ev.CompensationParked(WID, saga.tick(), "a"))
        saga.finish_compensation("cancelled").retry_compensation(["a"])
    plan = outcomes.plan_compensation(saga.inst, step, saga.now, fence=3)
    (event,) = plan.events
    if kind == "call":
        assert isinstance(event, ev.CompensationStepStarted), case
        assert (event.via, plan.via, plan.call) == (via, via, ActionRef(handler=target)), case
        assert (plan.attempt, event.attempt) == (2, 2) if prior == "failed-action" else (1, 1)
        assert plan.idempotency_key == event.idempotency_key
        assert plan.timeout == 20.0  # the step's timeout: the compensation declares none
    elif kind == "parked":
        assert isinstance(event, ev.CompensationParked) and plan.call is None, case
    else:
        assert isinstance(event, ev.StepCompensated) and event.via == "operator" and plan.call is None, case


@pytest.mark.parametrize("comp", [{"action": UNDO}, {"type": "RETRY", "action": UNDO}, {"type": "MANUAL"}])
def test_a_step_whose_attempt_may_still_run_is_parked_not_undone(comp) -> None:
    """Undoing what may still be done would leak the effect the attempt applies after its undo."""
    saga = SagaBuilder(("a",)).start().start_step("a")
    saga.fail_step("a", error_type="AttemptStillRunning", uncertain=True).begin_compensation("timeout")
    step = steps(a={"compensation": comp})["a"]
    plan = outcomes.plan_compensation(saga.inst, step, saga.now, fence=1)
    (event,) = plan.events
    assert isinstance(event, ev.CompensationParked) and plan.call is None
    assert event.note.startswith("attempt-still-running")
    # An operator who knows the attempt ended retries it: then it is undone as usual.
    saga.record(event)
    saga.finish_compensation("timeout").retry_compensation(["a"])
    if comp.get("type") != "MANUAL":
        assert outcomes.plan_compensation(saga.inst, step, saga.now, fence=1).call == ActionRef(handler=UNDO)


def test_an_undo_that_may_still_run_is_not_retried() -> None:
    saga, _ = compensating("a")
    comp = CompensationAction(CompensationType.RETRY, ActionRef(UNDO), max_retries=5)
    result = failure("AttemptStillRunning", retryable=False)
    (event,) = outcomes.on_compensation_outcome(saga.inst, "a", comp, 1, "action", result, saga.now, random.Random())
    assert isinstance(event, ev.CompensationFailed) and not event.will_retry


def test_a_compensation_timeout_of_its_own_wins_over_the_steps() -> None:
    saga, step = compensating("a", compensation={"action": UNDO, "timeout": "5s"}, timeout="20s")
    assert outcomes.plan_compensation(saga.inst, step, saga.now, 1).timeout == 5.0


COMP_RESULT_TABLE = [
    # (case, compensation, attempt, via, result, expected: "done" | (will_retry, delay))
    ("undo succeeds", CompensationAction(action=ActionRef(UNDO)), 1, "action", AttemptResult.success(), "done"),
    ("undo fails for good", CompensationAction(action=ActionRef(UNDO)), 1, "action", failure(), (False, None)),
    ("retry: retries left", CompensationAction(CompensationType.RETRY, ActionRef(UNDO), max_retries=2, retry_delay=2),
     1, "action", failure(), (True, 2.0)),
    ("retry: backoff doubles", CompensationAction(CompensationType.RETRY, ActionRef(UNDO), max_retries=2,
     retry_delay=2), 2, "action", failure(), (True, 4.0)),
    ("retry: exhausted", CompensationAction(CompensationType.RETRY, ActionRef(UNDO), max_retries=2), 3, "action",
     failure(), (False, None)),
    ("retry: waits for the breaker's trial", CompensationAction(CompensationType.RETRY, ActionRef(UNDO)), 1, "action",
     failure(retry_after=30.0), (True, 30.0)),
    ("alternative after the undo failed: at once", CompensationAction(CompensationType.ALTERNATIVE, ActionRef(UNDO),
     ActionRef(ALT)), 1, "action", failure(), (True, 0.0)),
    ("alternative fails too", CompensationAction(CompensationType.ALTERNATIVE, ActionRef(UNDO), ActionRef(ALT)), 2,
     "alternative", failure(), (False, None)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "comp", "attempt", "via", "result", "expected"), COMP_RESULT_TABLE)
def test_after_a_compensation_attempt(case, comp, attempt, via, result, expected) -> None:
    saga, _ = compensating("a")
    (event,) = outcomes.on_compensation_outcome(saga.inst, "a", comp, attempt, via, result, saga.now, random.Random())
    if expected == "done":
        assert event == ev.StepCompensated(WID, saga.now, "a", attempt, via, result.elapsed), case
        return
    will_retry, delay = expected
    assert isinstance(event, ev.CompensationFailed), case
    assert (event.will_retry, event.attempt, event.error_type) == (will_retry, attempt, result.error_type), case
    assert event.next_attempt_at == (None if delay is None else pytest.approx(saga.now + delay)), case


def test_a_retry_compensation_policy_is_exponential_from_its_delay() -> None:
    policy = CompensationAction(CompensationType.RETRY, ActionRef(UNDO), max_retries=4, retry_delay=90).retry_policy()
    assert (policy.max_attempts, policy.initial_delay, policy.max_delay) == (5, 90, 90)
    assert [policy.base_delay(n) for n in (1, 2)] == [90, 90]


def test_step_statuses_follow_the_recorded_outcomes() -> None:
    """The rules' events apply to the instance they came from (no rule emits an illegal transition)."""
    saga = running_step("a")
    saga.record(outcomes.on_step_outcome(saga.inst, steps()["a"], failure(), T0 + 50, random.Random())[0])
    assert saga.inst.step("a").status is StepStatus.WAITING_RETRY
