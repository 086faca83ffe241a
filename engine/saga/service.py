"""SagaCoordinatorService: advances claimed sagas, forward and backward, many at once.

Each claimed saga runs as a coroutine on the worker's event loop: ``decide()`` says what is next, the pure
rules of ``engine.domain.outcomes`` say which events follow a decision or a result, and this module
starts step attempts (``engine.saga.attempts``), records the events and commits them, one Lua round trip
per step transition (the result of a step and the start of the next are committed together). While one
saga waits for a service or a commit, the others run: hundreds of attempts and commits are in flight on
one worker, its commits sharing one pipelining connection (``engine.saga.commits``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.domain import events as ev
from engine.domain import outcomes
from engine.domain.policies import MIN_COMPENSATION_BUDGET, ActionRef, CustomBackoff, RetryPolicy
from engine.domain.saga import Action, Decision, decide
from engine.domain.services import ServiceEndpoint
from engine.domain.status import BackoffStrategy, StepStatus
from engine.errors import AttemptStillRunning, LeaseLost, NotFound, WorkflowNotFound
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.workflow_repository import StoredWorkflow, WorkflowRepository
from engine.ports import Invocation, StepContext
from engine.saga.attempts import AttemptRunner, Outcome
from engine.saga.bulkheads import Bulkheads
from engine.saga.commits import SagaCommits
from engine.saga.execution import LeaseBook, SagaExecution, attempt_result
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

EVENTUAL_FLUSH_EVERY = 32
"""EVENTUAL sagas persist lazily: at waits, at the end, and at least every this many events."""
SLOT_WAIT_HANDBACK_S = 0.5
"""A saga that cannot wait in the worker for a service slot is handed back this long."""

Act = Callable[[SagaExecution, Decision, float, float], Awaitable[bool]]
"""A decision acted on: True when the saga is handed back or done."""


class SagaCoordinatorService:
    def __init__(
        self,
        repo: WorkflowRepository,
        definitions: DefinitionRepository,
        port: Any,
        *,
        attempts: AttemptRunner | None = None,
        bulkheads: Bulkheads | None = None,
        stats: StatsRecorder | None = None,
        leases: LeaseBook | None = None,
        request_dispatch: Callable[[], None] = lambda: None,
        fsync: Callable[[], None] | None = None,
        resolve_custom: Callable[[str], Callable] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stopping: Callable[[], bool] = lambda: False,
        lock_retry_seconds: float = 0.2,
        compensation_floor: float = MIN_COMPENSATION_BUDGET,
    ):
        self.repo = repo
        self.definitions = definitions
        self.port = port
        self.attempts = attempts or AttemptRunner()
        self.bulkheads = bulkheads
        self.stats = stats or StatsRecorder()
        self.leases = leases or LeaseBook()
        self.resolve_custom = resolve_custom
        self.clock = clock
        self.rng = rng or random.Random()
        self.stopping = stopping
        self.compensation_floor = compensation_floor
        self.commits = SagaCommits(repo, self.stats, request_dispatch, fsync, clock, lock_retry_seconds)
        self.waiting_for_slots = 0
        """Sagas parked on a service's bulkhead: they do not count against the worker's in-flight limit."""
        self._acts: dict[Action, Act] = {
            Action.START: self._start,
            Action.RUN: self._run_steps,
            Action.RECOVER: self._recover,
            Action.WAIT_INFLIGHT: self._await_inflight,
            Action.WAIT: self._wait,
            Action.COMPLETE: self._complete,
            Action.FAIL: self._fail,
            Action.TIMEOUT: self._time_out,
            Action.BEGIN_COMPENSATION: self._begin_compensation,
            Action.COMPENSATION_TIMEOUT: self._compensation_timeout,
            Action.COMPENSATE: self._compensate,
            Action.FINISH_COMPENSATION: self._finish_compensation,
        }

    # ================================================================== one saga
    async def run(self, stored: StoredWorkflow) -> bool:
        """Run one claimed saga as far as it can go now. False if it could not be run at all."""
        inst = stored.instance
        wid = inst.workflow_id
        definition = self.definitions.find_by_name_and_version(inst.workflow_type, inst.definition_version)
        if definition is None:
            log.error("workflow %s: definition %s:%s is missing", wid, inst.workflow_type, inst.definition_version)
            return False
        ex = SagaExecution(
            inst, definition, stored.fence, stored.version, inst.status, snapshot_version=stored.snapshot_version
        )
        self.leases.hold(wid, stored.fence)
        try:
            await self._run(ex)
        except (LeaseLost, WorkflowNotFound) as exc:
            log.warning("%s", exc)
        finally:
            if ex.inflight:
                # Never let go of a saga while its attempts may act: the next holder would re-run them.
                await asyncio.gather(*(a.stop() for a in ex.inflight.values()), return_exceptions=True)
            self.leases.drop(wid)
        return True

    async def advance_many(self, batch: Sequence[StoredWorkflow]) -> int:
        """Run claimed sagas concurrently until each waits or ends (tools and tests; workers use ``run``)."""
        return sum(await asyncio.gather(*(self.run(s) for s in batch)))

    async def _run(self, ex: SagaExecution) -> None:
        """The saga's life while this worker holds it: decide, act, commit; until it waits or ends."""
        while True:
            now = self.clock()
            t_decide = time.perf_counter()
            d = decide(ex.inst, now, ex.inflight)
            if d.action is Action.DONE:
                if ex.buffered:
                    await self.commits.flush(ex, sched="del")
                return
            if self.stopping() and not ex.inflight and d.action in (Action.RUN, Action.COMPENSATE):
                # Warm shutdown: hand the saga back, runnable at once by another worker.
                if await self.commits.flush(ex, sched="set", at_ms=int(now * 1000)):
                    return
                continue
            if await self._acts[d.action](ex, d, now, t_decide):
                return

    # ================================================================== forward
    async def _start(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        ex.record(ev.WorkflowStarted(ex.inst.workflow_id, now, ex.inst.workflow_type, ex.inst.correlation_id))
        if ex.locked:
            return not await self.commits.acquire_locks(ex, now)
        return False

    async def _run_steps(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        slots = await self._take_slots(ex, [ex.step_def(sid).action for sid in d.steps])
        if slots is None:
            return await self._slot_handback(ex)
        if slots:  # waited for a service: what follows is the engine's overhead, not the wait
            now, t_decide = self.clock(), time.perf_counter()
        ex.record_all(outcomes.start_steps(ex.inst, ex.steps, d.steps, now, ex.fence))
        persist = ex.inst.consistency.persists_before_each_step or len(ex.buffered) >= EVENTUAL_FLUSH_EVERY
        if persist and not await self.commits.flush(ex):
            self._give_back(slots)  # a control action won: nothing started
            return False
        self.stats.observe("step_overhead", time.perf_counter() - t_decide, (ex.inst.workflow_type,))
        for sid, slot in zip(d.steps, slots or [None] * len(d.steps), strict=True):
            self._launch(ex, sid, slot)
        if len(ex.inflight) == 1:
            # A lone step (the common sequential case): wait for it here, as deciding again would say.
            # Its timeout is capped at the deadline, so this wait ends by then (or its grace).
            ((sid, attempt),) = ex.inflight.items()
            outcome = await attempt.ended
            del ex.inflight[sid]
            self._record_forward(ex, sid, outcome)
        return False

    async def _recover(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        """Steps recorded RUNNING that nobody executes: a worker died or lost its lease mid-step."""
        recovery = outcomes.recover_interrupted(ex.inst, ex.steps, d.steps, now, ex.fence)
        if recovery.rerun is None:
            ex.record_all(recovery.events)
            return False
        slots = await self._take_slots(ex, [ex.step_def(recovery.rerun).action])
        if slots is None:
            return await self._slot_handback(ex)
        ex.record_all(recovery.events)
        self.stats.incr("steps", (ex.inst.workflow_type, recovery.rerun, "recovered"))
        if ex.inst.consistency.persists_before_each_step and not await self.commits.flush(ex):
            self._give_back(slots)
            return False
        self._launch(ex, recovery.rerun, slots[0] if slots else None)
        return False

    def _launch(self, ex: SagaExecution, sid: str, slot: Any) -> None:
        sd = ex.step_def(sid)
        se = ex.inst.step(sid)
        timeout = max(min(sd.timeout, ex.inst.deadline - self.clock()), 0.001)
        ctx = ex.context(sid, "forward", se.idempotency_key or "", se.attempt, timeout)
        attempt = self.attempts.start(sid, self._invocation(sd.action, ctx), timeout)
        if slot is not None:
            attempt.on_end(lambda: self.bulkheads.give_back(slot))  # type: ignore[union-attr]
        ex.inflight[sid] = attempt

    async def _await_inflight(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        until = None if d.until is None else time.monotonic() + max(d.until - self.clock(), 0.0)
        for attempt in await self.attempts.first_done(list(ex.inflight.values()), until):
            del ex.inflight[attempt.key]
            self._record_forward(ex, attempt.key, attempt.outcome())
        return False

    async def _wait(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        return await self.commits.flush(ex, sched="set", at_ms=int((d.until or now) * 1000))

    async def _complete(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        ex.record_all(outcomes.complete(ex.inst, now))
        if await self.commits.flush(ex, sched="del", lock="release" if ex.locked else "none"):
            self.stats.incr("workflows_finished", (ex.inst.workflow_type, "completed"))
            self.stats.observe("workflow_duration", now - ex.inst.created_at, (ex.inst.workflow_type, "completed"))
            return True
        return False

    async def _fail(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        step = d.steps[0] if d.steps else None
        ex.record_all(outcomes.fail(ex.inst, step, d.reason, now, self.compensation_floor))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))
        return False

    async def _time_out(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        """The deadline passed. Attempts that ended meanwhile are recorded as they ended; the others are
        stopped, and only once each has ended (or is known to be still running) does compensation begin."""
        for attempt in [a for a in ex.inflight.values() if a.done]:
            del ex.inflight[attempt.key]
            self._record_forward(ex, attempt.key, attempt.outcome())
        running = list(ex.inflight.values())
        ex.inflight.clear()
        stopped = await asyncio.gather(*(a.stop() for a in running))
        abandoned = {
            a.key: isinstance(o.error, AttemptStillRunning)
            for a, o in zip(running, stopped, strict=True)
            if ex.inst.step(a.key).status is StepStatus.RUNNING
        }
        ex.record_all(outcomes.time_out(ex.inst, abandoned, self.clock(), self.compensation_floor))
        self.stats.incr("workflows_timed_out", (ex.inst.workflow_type,))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))
        return False

    def _record_forward(self, ex: SagaExecution, sid: str, outcome: Outcome) -> None:
        if ex.inst.step(sid).status is not StepStatus.RUNNING:
            return  # given up meanwhile; its result no longer counts
        self.stats.observe("step_execution", outcome.elapsed, (ex.inst.workflow_type, sid))
        sd = ex.step_def(sid)
        events = outcomes.on_step_outcome(
            ex.inst, sd, attempt_result(outcome), self.clock(), self.rng, self._custom_backoff(sd.retry)
        )
        ex.record_all(events)
        for e in events:
            label = "completed" if isinstance(e, ev.StepExecuted) else "retried" if e.will_retry else "failed"
            self.stats.incr("steps", (ex.inst.workflow_type, sid, label))

    def _invocation(self, ref: ActionRef, ctx: StepContext) -> Invocation:
        try:
            return self.port.invocation(ref, ctx)
        except Exception as exc:  # an unknown handler or service: the attempt fails with the reason
            return Invocation(_raiser(exc), blocking=False)

    def _custom_backoff(self, policy: RetryPolicy) -> CustomBackoff | None:
        if policy.backoff is BackoffStrategy.CUSTOM and policy.custom and self.resolve_custom:
            return self.resolve_custom(policy.custom)
        return None

    # ================================================================== backward
    async def _begin_compensation(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        ex.record_all(outcomes.begin_compensation(ex.inst, now, d.reason, self.compensation_floor))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))
        return False

    async def _compensation_timeout(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        ex.record_all(outcomes.compensation_timeout(ex.inst, now))
        self.stats.incr("compensation_timeouts", (ex.inst.workflow_type,))
        return False

    async def _compensate(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        """Compensate the top of the stack by its CompensationAction (UNDO, RETRY, ALTERNATIVE, MANUAL)."""
        sid = d.steps[0]
        sd = ex.step_def(sid)
        plan = outcomes.plan_compensation(ex.inst, sd, now, ex.fence)
        wtype = ex.inst.workflow_type
        if plan.call is None:
            ex.record_all(plan.events)
            if any(isinstance(e, ev.CompensationParked) for e in plan.events):
                self.stats.incr("compensations", (wtype, "parked"))
            return False
        slots = await self._take_slots(ex, [plan.call])
        if slots is None:
            return await self._slot_handback(ex)
        if slots:
            t_decide = time.perf_counter()
        ex.record_all(plan.events)
        if ex.inst.consistency.persists_before_each_step and not await self.commits.flush(ex):
            self._give_back(slots)
            return False
        self.stats.observe("compensation_overhead", time.perf_counter() - t_decide, (wtype,))
        ctx = ex.context(sid, "compensation", plan.idempotency_key, plan.attempt, plan.timeout)
        attempt = self.attempts.start(sid, self._invocation(plan.call, ctx), plan.timeout)
        if slots:
            attempt.on_end(lambda: self.bulkheads.give_back(slots[0]))  # type: ignore[union-attr]
        outcome = await attempt.ended
        self.stats.observe("compensation_execution", outcome.elapsed, (wtype, sid))
        assert sd.compensation is not None
        result = attempt_result(outcome, record_output=False)
        events = outcomes.on_compensation_outcome(
            ex.inst, sid, sd.compensation, plan.attempt, plan.via, result, self.clock(), self.rng
        )
        ex.record_all(events)
        for e in events:
            label = "compensated" if isinstance(e, ev.StepCompensated) else "retried" if e.will_retry else "failed"
            self.stats.incr("compensations", (wtype, label))
        return False

    async def _finish_compensation(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> bool:
        comp_started = ex.inst.compensation_started_at
        ex.record_all(outcomes.finish_compensation(ex.inst, now))
        if await self.commits.flush(ex, sched="del", lock="release" if ex.locked else "none"):
            wtype = ex.inst.workflow_type
            self.stats.incr("workflows_finished", (wtype, "compensated"))
            self.stats.observe("workflow_duration", now - ex.inst.created_at, (wtype, "compensated"))
            if comp_started:
                self.stats.observe("compensation_duration", now - comp_started, (wtype,))
            return True
        return False

    # ================================================================== bulkheads
    async def _take_slots(self, ex: SagaExecution, actions: Sequence[ActionRef]) -> list[Any] | None:
        """A bulkhead slot for each call to a service (none for Python handlers), taken in service-name
        order so that two sagas never wait for each other's slots. ``[]`` when nothing needed one;
        None when the saga must be handed back (too many waiting, or its deadline came first)."""
        bulkheads = self.bulkheads
        if bulkheads is None or not any(a.service for a in actions):
            return []
        endpoints = [self._endpoint(a) for a in actions]
        wanted = sorted((e.name, i) for i, e in enumerate(endpoints) if e is not None)
        taken: list[Any] = [None] * len(actions)
        until = time.monotonic() + max(ex.inst.deadline - self.clock(), 0.0)
        for _, i in wanted:
            endpoint = endpoints[i]
            assert endpoint is not None
            full = bulkheads.in_flight[endpoint.name] >= bulkheads.share(endpoint)
            if full and not bulkheads.can_wait():
                self._give_back(taken)
                return None
            self.waiting_for_slots += 1
            try:
                ok = await bulkheads.take(endpoint, until)
            finally:
                self.waiting_for_slots -= 1
            if not ok:
                self._give_back(taken)
                return None
            taken[i] = endpoint
        return taken

    def _endpoint(self, action: ActionRef) -> ServiceEndpoint | None:
        if not action.service:
            return None
        try:
            return self.port.http.registry.endpoint(action.service)
        except NotFound:
            return None  # the attempt fails with the reason; it needs no slot

    def _give_back(self, slots: list[Any] | None) -> None:
        for endpoint in slots or []:
            if endpoint is not None:
                self.bulkheads.give_back(endpoint)  # type: ignore[union-attr]

    async def _slot_handback(self, ex: SagaExecution) -> bool:
        """No slot now (too many sagas waiting in this worker, or the deadline is near): wait in the
        schedule instead, holding nothing."""
        at = self.clock() + SLOT_WAIT_HANDBACK_S * (0.5 + self.rng.random())
        return await self.commits.flush(ex, sched="set", at_ms=int(min(at, ex.inst.deadline) * 1000))


def _raiser(exc: Exception) -> Callable[[], Awaitable[Any]]:
    async def fail() -> Any:
        raise exc

    return fail
