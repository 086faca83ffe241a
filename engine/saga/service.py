"""SagaCoordinatorService: advances claimed sagas, forward and backward.

It only acts: ``decide()`` says what is next, the pure rules of ``engine.domain.outcomes`` say which
events follow a decision or a result, and this module calls the integration port, records those
events and commits them, one Lua round trip per step transition (the result of a step and the start
of the next are committed together; see ``engine.saga.pipeline``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from engine.domain import events as ev
from engine.domain import outcomes
from engine.domain.policies import ActionRef, CustomBackoff, RetryPolicy
from engine.domain.saga import Action, Decision, decide
from engine.domain.status import BackoffStrategy, ConsistencyLevel, StepStatus
from engine.errors import ConcurrencyConflict, ConfigurationError, IllegalTransition
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.workflow_repository import CommitRequest, CommitResult, StoredWorkflow, WorkflowRepository
from engine.ports import ServiceIntegrationPort, StepContext
from engine.saga.execution import LeaseBook, SagaExecution, attempt_result
from engine.saga.executor import Outcome, StepExecutor
from engine.saga.pipeline import CommitPipeline
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

EVENTUAL_FLUSH_EVERY = 32
"""EVENTUAL sagas persist lazily: at waits, at the end, and at least every this many events."""
SNAPSHOT_EVERY = 16
"""Most events a reader replays on top of the stored snapshot."""

Commits = Generator[CommitRequest, Any, bool]
"""A saga's next move: yields its commits, returns True when the saga is handed back or done."""


class SagaCoordinatorService:
    def __init__(
        self,
        repo: WorkflowRepository,
        definitions: DefinitionRepository,
        port: ServiceIntegrationPort,
        *,
        executor: StepExecutor | None = None,
        stats: StatsRecorder | None = None,
        leases: LeaseBook | None = None,
        request_dispatch: Callable[[], None] = lambda: None,
        fsync: Callable[[], None] | None = None,
        resolve_custom: Callable[[str], Callable] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stopping: Callable[[], bool] = lambda: False,
        lock_retry_seconds: float = 0.2,
        pipeline_depth: int = 2,
    ):
        self.repo = repo
        self.definitions = definitions
        self.port = port
        self.executor = executor or StepExecutor()
        self.stats = stats or StatsRecorder()
        self.leases = leases or LeaseBook()
        self.request_dispatch = request_dispatch
        self.fsync = fsync
        self.resolve_custom = resolve_custom
        self.clock = clock
        self.rng = rng or random.Random()
        self.stopping = stopping
        self.lock_retry_seconds = lock_retry_seconds
        self.pipeline = CommitPipeline(repo, self.stats, self.leases, pipeline_depth)
        # What each decision does: moves only record events; acts may call the port and commit.
        self._moves: dict[Action, Callable[[SagaExecution, Decision, float], None]] = {
            Action.WAIT_INFLIGHT: self._await_inflight,
            Action.FAIL: self._fail,
            Action.TIMEOUT: self._time_out,
            Action.BEGIN_COMPENSATION: self._begin_compensation,
            Action.COMPENSATION_TIMEOUT: self._compensation_timeout,
        }
        self._acts: dict[Action, Callable[[SagaExecution, Decision, float, float], Commits]] = {
            Action.START: self._start,
            Action.RUN: self._run_steps,
            Action.RECOVER: self._recover,
            Action.WAIT: self._wait,
            Action.COMPLETE: self._complete,
            Action.COMPENSATE: self._compensate,
            Action.FINISH_COMPENSATION: self._finish_compensation,
        }

    # ================================================================== advance
    def advance(self, stored: StoredWorkflow) -> None:
        """Run one claimed saga as far as it can go now."""
        self.advance_many([stored])

    def advance_many(self, batch: Sequence[StoredWorkflow]) -> int:
        """Run claimed sagas as far as each can go now, their commits pipelined. Returns how many."""
        sagas = []
        for stored in batch:
            inst = stored.instance
            definition = self.definitions.find_by_name_and_version(inst.workflow_type, inst.definition_version)
            if definition is None:
                log.error(
                    "workflow %s: definition %s:%s is missing",
                    inst.workflow_id,
                    inst.workflow_type,
                    inst.definition_version,
                )
                continue
            ex = SagaExecution(
                inst, definition, stored.fence, stored.version, inst.status, snapshot_version=stored.snapshot_version
            )
            self.leases.hold(inst.workflow_id, stored.fence)
            sagas.append((inst.workflow_id, self._run(ex)))
        self.pipeline.run(sagas)
        return len(sagas)

    def _run(self, ex: SagaExecution) -> Generator[CommitRequest, Any, None]:
        """The saga's life while this worker holds it: decide, act, commit; until it waits or ends."""
        while True:
            now = self.clock()
            t_decide = time.perf_counter()
            d = decide(ex.inst, now, ex.inflight)
            if d.action is Action.DONE:
                if ex.buffered:
                    yield from self._flush(ex, sched="del")
                return
            if self.stopping() and not ex.inflight and d.action in (Action.RUN, Action.COMPENSATE):
                # Warm shutdown: hand the saga back, runnable at once by another worker.
                if (yield from self._flush(ex, sched="set", at_ms=int(now * 1000))):
                    return
                continue
            move = self._moves.get(d.action)
            if move is not None:
                move(ex, d, now)
            elif (yield from self._acts[d.action](ex, d, now, t_decide)):
                return

    # ================================================================== forward
    def _start(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        ex.record(ev.WorkflowStarted(ex.inst.workflow_id, now, ex.inst.workflow_type, ex.inst.correlation_id))
        if ex.locked:
            return not (yield from self._acquire_locks(ex, now))
        return False

    def _run_steps(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        ex.record_all(outcomes.start_steps(ex.inst, ex.steps, d.steps, now, ex.fence))
        persist = ex.inst.consistency.persists_before_each_step or len(ex.buffered) >= EVENTUAL_FLUSH_EVERY
        if persist and not (yield from self._flush(ex)):
            return False
        self.stats.observe("step_overhead", time.perf_counter() - t_decide, (ex.inst.workflow_type,))
        self._execute(ex, d.steps)
        return False

    def _recover(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        """Steps recorded RUNNING that nobody executes: a worker died or lost its lease mid-step."""
        recovery = outcomes.recover_interrupted(ex.inst, ex.steps, d.steps, now, ex.fence)
        ex.record_all(recovery.events)
        if recovery.rerun is None:
            return False
        self.stats.incr("steps", (ex.inst.workflow_type, recovery.rerun, "recovered"))
        if ex.inst.consistency.persists_before_each_step and not (yield from self._flush(ex)):
            return False
        self._execute(ex, (recovery.rerun,))
        return False

    def _await_inflight(self, ex: SagaExecution, d: Decision, now: float) -> None:
        until_mono = None if d.until is None else time.monotonic() + max(d.until - self.clock(), 0.0)
        for pending in self.executor.wait_any(list(ex.inflight.values()), until_mono):
            del ex.inflight[pending.key]
            self._record_forward(ex, pending.key, pending.outcome or Outcome(False, error=RuntimeError("lost")))

    def _wait(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        return (yield from self._flush(ex, sched="set", at_ms=int((d.until or now) * 1000)))

    def _complete(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        ex.record_all(outcomes.complete(ex.inst, now))
        if (yield from self._flush(ex, sched="del", lock="release" if ex.locked else "none")):
            self.stats.incr("workflows_finished", (ex.inst.workflow_type, "completed"))
            self.stats.observe("workflow_duration", now - ex.inst.created_at, (ex.inst.workflow_type, "completed"))
            return True
        return False

    def _fail(self, ex: SagaExecution, d: Decision, now: float) -> None:
        ex.record_all(outcomes.fail(ex.inst, d.steps[0] if d.steps else None, d.reason, now))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))

    def _time_out(self, ex: SagaExecution, d: Decision, now: float) -> None:
        abandoned = list(ex.inflight)
        ex.inflight.clear()
        ex.record_all(outcomes.time_out(ex.inst, abandoned, now))
        self.stats.incr("workflows_timed_out", (ex.inst.workflow_type,))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))

    def _execute(self, ex: SagaExecution, step_ids: Sequence[str]) -> None:
        now = self.clock()
        calls = []
        for sid in step_ids:
            sd = ex.step_def(sid)
            se = ex.inst.step(sid)
            timeout = max(min(sd.timeout, ex.inst.deadline - now), 0.001)
            ctx = ex.context(sid, "forward", se.idempotency_key or "", se.attempt, timeout)
            calls.append((sid, _bind(self.port.execute_step, sd.action, ctx), timeout))
        if len(calls) == 1 and not ex.inflight and self.executor.can_run_inline():
            sid, fn, timeout = calls[0]
            self._record_forward(ex, sid, self.executor.run_inline(fn, timeout))
            return
        for sid, fn, timeout in calls:
            ex.inflight[sid] = self.executor.submit(sid, fn, timeout, ex.notify)

    def _record_forward(self, ex: SagaExecution, sid: str, outcome: Outcome) -> None:
        if ex.inst.step(sid).status is not StepStatus.RUNNING:
            return  # given up meanwhile (deadline); its result no longer counts
        self.stats.observe("step_execution", outcome.elapsed, (ex.inst.workflow_type, sid))
        sd = ex.step_def(sid)
        events = outcomes.on_step_outcome(
            ex.inst, sd, attempt_result(outcome), self.clock(), self.rng, self._custom_backoff(sd.retry)
        )
        ex.record_all(events)
        for e in events:
            label = "completed" if isinstance(e, ev.StepExecuted) else "retried" if e.will_retry else "failed"
            self.stats.incr("steps", (ex.inst.workflow_type, sid, label))

    def _custom_backoff(self, policy: RetryPolicy) -> CustomBackoff | None:
        if policy.backoff is BackoffStrategy.CUSTOM and policy.custom and self.resolve_custom:
            return self.resolve_custom(policy.custom)
        return None

    # ================================================================== backward
    def _begin_compensation(self, ex: SagaExecution, d: Decision, now: float) -> None:
        ex.record_all(outcomes.begin_compensation(ex.inst, now, d.reason))
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))

    def _compensation_timeout(self, ex: SagaExecution, d: Decision, now: float) -> None:
        ex.record_all(outcomes.compensation_timeout(ex.inst, now))
        self.stats.incr("compensation_timeouts", (ex.inst.workflow_type,))

    def _compensate(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        """Compensate the top of the stack by its CompensationAction (UNDO, RETRY, ALTERNATIVE, MANUAL)."""
        sid = d.steps[0]
        sd = ex.step_def(sid)
        plan = outcomes.plan_compensation(ex.inst, sd, now, ex.fence)
        ex.record_all(plan.events)
        wtype = ex.inst.workflow_type
        if plan.call is None:
            if any(isinstance(e, ev.CompensationParked) for e in plan.events):
                self.stats.incr("compensations", (wtype, "parked"))
            return False
        if ex.inst.consistency.persists_before_each_step and not (yield from self._flush(ex)):
            return False
        self.stats.observe("compensation_overhead", time.perf_counter() - t_decide, (wtype,))
        ctx = ex.context(sid, "compensation", plan.idempotency_key, plan.attempt, plan.timeout)
        fn = _bind(self.port.compensate_step, plan.call, ctx)
        if self.executor.can_run_inline():
            outcome = self.executor.run_inline(fn, plan.timeout)
        else:
            pending = self.executor.submit(sid, fn, plan.timeout, ex.notify)
            while not self.executor.wait_any([pending], None):
                pass
            outcome = pending.outcome or Outcome(False, error=RuntimeError("lost"))
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

    def _finish_compensation(self, ex: SagaExecution, d: Decision, now: float, t_decide: float) -> Commits:
        comp_started = ex.inst.compensation_started_at
        ex.record_all(outcomes.finish_compensation(ex.inst, now))
        if (yield from self._flush(ex, sched="del", lock="release" if ex.locked else "none")):
            wtype = ex.inst.workflow_type
            self.stats.incr("workflows_finished", (wtype, "compensated"))
            self.stats.observe("workflow_duration", now - ex.inst.created_at, (wtype, "compensated"))
            if comp_started:
                self.stats.observe("compensation_duration", now - comp_started, (wtype,))
            return True
        return False

    # ================================================================== persistence
    def _acquire_locks(self, ex: SagaExecution, now: float) -> Generator[CommitRequest, Any, bool]:
        """STRICT: take every declared resource lock with the start; wait and retry if one is held.

        False when the saga was handed back to wait for a lock."""
        res = yield from self._commit(ex, lock="acquire")
        if res is None or not res.lock_busy:
            return True  # started (or a control action won and the saga is decided again)
        stored = self.repo.load(ex.inst.workflow_id)
        self._reset(ex, stored)
        if not ex.inst.waiting_for_lock:
            ex.record(ev.ResourceLockWaiting(ex.inst.workflow_id, now, list(ex.inst.resources), res.lock_holder or ""))
        # Handed back until the retry; if a control action won meanwhile, decide again instead.
        return not (yield from self._flush(ex, sched="set", at_ms=int((now + self.lock_retry_seconds) * 1000)))

    def _flush(
        self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none"
    ) -> Generator[CommitRequest, Any, bool]:
        """Commit buffered events. False when a concurrent control action won: the instance was
        reloaded with this worker's step results re-applied, and the caller must decide again."""
        res = yield from self._commit(ex, sched=sched, at_ms=at_ms, lock=lock)
        return res is not None

    def _commit(
        self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none"
    ) -> Generator[CommitRequest, Any, CommitResult | None]:
        if not ex.buffered and sched == "keep" and lock == "none":
            return CommitResult(version=ex.version)
        # The snapshot is written when the saga leaves this worker's hands or ends, or when the events
        # after the last one pile up; in between, readers replay those few events on top of it.
        new_version = ex.version + len(ex.buffered)
        write = (
            sched != "keep"
            or lock != "none"
            or ex.inst.is_terminal
            or new_version - ex.snapshot_version >= SNAPSHOT_EVERY
        )
        request = CommitRequest(
            ex.inst,
            list(ex.buffered),
            ex.version,
            ex.old_status,
            int(self.clock() * 1000),
            ex.fence,
            sched,
            at_ms,
            lock,
            write,
        )
        try:
            res = yield request
        except ConcurrencyConflict:
            self._reload_after_conflict(ex)
            return None
        if res.lock_busy:
            return res
        if self.fsync is not None and ex.inst.consistency is ConsistencyLevel.STRICT:
            self.fsync()
        ex.version = res.version
        if write:
            ex.snapshot_version = res.version
        ex.old_status = ex.inst.status
        ex.buffered.clear()
        if res.enqueue:
            self.request_dispatch()
        return res

    def _reload_after_conflict(self, ex: SagaExecution) -> None:
        results = [
            e
            for e in ex.buffered
            if isinstance(e, ev.StepExecuted | ev.StepFailed | ev.StepCompensated | ev.CompensationFailed)
        ]
        self._reset(ex, self.repo.load(ex.inst.workflow_id))
        for e in results:
            try:
                ex.record(e)
            except (IllegalTransition, KeyError):
                log.info("dropping %s of %s after a concurrent change", e.TYPE, ex.inst.workflow_id)

    def _reset(self, ex: SagaExecution, stored: StoredWorkflow) -> None:
        ex.inst = stored.instance
        ex.version = stored.version
        ex.snapshot_version = stored.snapshot_version
        ex.old_status = stored.instance.status
        ex.buffered.clear()
        # A control action never takes the lease, so the fence is unchanged.


def _bind(method: Callable, ref: ActionRef | None, ctx: StepContext) -> Callable[[], Any]:
    if ref is None:
        raise ConfigurationError(f"step {ctx.step_id} has no {ctx.phase} action")
    return lambda: method(ref, ctx)
