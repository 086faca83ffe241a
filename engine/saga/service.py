"""SagaCoordinatorService: starts sagas and advances them (forward and backward recovery).

The one loop that acts: ``decide()`` says what is next, this module calls the integration port,
records events on the aggregate and commits them, one Lua round trip per step transition (the
result of a step and the start of the next are committed together).
"""

from __future__ import annotations

import logging
import queue
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.domain import events as ev
from engine.domain.definition import StepDefinition, WorkflowDefinition
from engine.domain.instance import WorkflowInstance
from engine.domain.policies import ActionRef, RetryPolicy, compensation_budget
from engine.domain.saga import Action, decide
from engine.domain.status import (
    BackoffStrategy,
    CompensationType,
    ConsistencyLevel,
    StepStatus,
    WorkflowStatus,
)
from engine.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    DefinitionError,
    IllegalTransition,
    StepError,
)
from engine.persistence.codec import is_json_value
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.workflow_repository import CreateResult, StoredWorkflow, WorkflowRepository
from engine.ports import ServiceIntegrationPort, StepContext
from engine.saga.executor import Outcome, Pending, StepExecutor
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

EVENTUAL_FLUSH_EVERY = 32
"""EVENTUAL sagas persist lazily: at waits, at the end, and at least every this many events."""


def fast_copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


class LeaseBook:
    """Workflows this process holds, for the heartbeat that renews their leases."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {}

    def hold(self, wid: str, fence: int) -> None:
        self.held[wid] = fence

    def drop(self, wid: str) -> None:
        self.held.pop(wid, None)

    def snapshot(self) -> dict[str, int]:
        return dict(self.held)


@dataclass
class SagaExecution:
    """A saga in the hands of one worker: the instance, its definition, and what is not yet committed."""

    inst: WorkflowInstance
    definition: WorkflowDefinition
    fence: int | None
    version: int
    old_status: WorkflowStatus
    buffered: list[ev.DomainEvent] = field(default_factory=list)
    inflight: dict[str, Pending] = field(default_factory=dict)
    notify: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    @property
    def locked(self) -> bool:
        return self.inst.consistency is ConsistencyLevel.STRICT and bool(self.inst.resources)

    def record(self, event: ev.DomainEvent) -> None:
        self.inst.record(event)
        self.buffered.extend(self.inst.take_pending())


@dataclass(frozen=True)
class ConsistencyReport:
    workflow_id: str
    consistent: bool
    stored_version: int
    replayed_version: int
    versions_sequential: bool
    differences: list[str]


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

    # ================================================================== start
    def start_saga(
        self,
        definition: WorkflowDefinition,
        input: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        consistency: ConsistencyLevel | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        security: Mapping[str, Any] | None = None,
        workflow_id: str | None = None,
        schedule: bool = True,
    ) -> CreateResult:
        """Validate the input, persist the new instance with its WorkflowCreated event, make it runnable."""
        t0 = time.perf_counter()
        data = definition.prepare_input(input)
        level = consistency or definition.consistency
        resources = definition.render_resources(data) if level is ConsistencyLevel.STRICT else []
        now = self.clock()
        wid = workflow_id or new_workflow_id()
        deps = definition.dependencies()
        created = ev.WorkflowCreated(
            workflow_id=wid,
            at=now,
            workflow_type=definition.name,
            definition_version=int(definition.version or 0),
            consistency=level.value,
            input=data,
            correlation_id=correlation_id or wid,
            deadline=now + definition.timeout,
            plan=[
                {
                    "id": s.id,
                    "depends_on": list(deps[s.id]),
                    "target": s.action.target,
                    "step_type": s.action.kind,
                    "compensation_type": s.compensation.type.value if s.compensation else "",
                    "idempotent": s.idempotent,
                }
                for s in definition.steps
            ],
            headers=dict(headers or {}),
            security=dict(security or {}),
            tracing={"trace_id": uuid.uuid4().hex},
            resources=resources,
        )
        inst = WorkflowInstance.create(created)
        result = self.repo.create(inst, int(now * 1000), idempotency_key=idempotency_key, schedule=schedule)
        if result.enqueue:
            self.request_dispatch()
        self.stats.observe("workflow_start", time.perf_counter() - t0)
        if result.created:
            self.stats.incr(f"workflows_started|{definition.name}")
        return result

    # ================================================================== advance
    def advance(self, stored: StoredWorkflow) -> None:
        """Run a claimed saga as far as it can go now; returns once it waits, ends or is handed back."""
        inst = stored.instance
        definition = self.definitions.find_by_name_and_version(inst.workflow_type, inst.definition_version)
        if definition is None:
            raise DefinitionError([f"definition {inst.workflow_type}:{inst.definition_version} is missing"])
        ex = SagaExecution(inst, definition, stored.fence, stored.version, inst.status)
        self.leases.hold(inst.workflow_id, stored.fence)
        try:
            self._loop(ex)
        finally:
            self.leases.drop(inst.workflow_id)

    def _loop(self, ex: SagaExecution) -> None:
        while True:
            now = self.clock()
            t_decide = time.perf_counter()
            d = decide(ex.inst, now, ex.inflight)
            a = d.action
            if a is Action.DONE:
                if ex.buffered:
                    self._flush(ex, sched="del")
                return
            if self.stopping() and not ex.inflight and a in (Action.RUN, Action.COMPENSATE):
                # Warm shutdown: hand the saga back, runnable at once by another worker.
                if self._flush(ex, sched="set", at_ms=int(now * 1000)):
                    return
                continue
            if a is Action.START:
                ex.record(ev.WorkflowStarted(ex.inst.workflow_id, now, ex.inst.workflow_type, ex.inst.correlation_id))
                if ex.locked and not self._acquire_locks(ex, now):
                    return
                continue
            if a is Action.RUN:
                self._start_steps(ex, d.steps, now)
                persist = ex.inst.consistency.persists_before_each_step or len(ex.buffered) >= EVENTUAL_FLUSH_EVERY
                if persist and not self._flush(ex):
                    continue
                self.stats.observe("step_overhead", time.perf_counter() - t_decide)
                self._execute(ex, d.steps)
                continue
            if a is Action.RECOVER:
                self._recover(ex, d.steps, now)
                continue
            if a is Action.WAIT_INFLIGHT:
                self._await_inflight(ex, d.until)
                continue
            if a is Action.WAIT:
                if self._flush(ex, sched="set", at_ms=int((d.until or now) * 1000)):
                    return
                continue
            if a is Action.COMPLETE:
                ex.record(
                    ev.WorkflowCompleted(
                        ex.inst.workflow_id, now, now, result=_result(ex.inst), metrics=ex.inst.metrics()
                    )
                )
                if self._flush(ex, sched="del", lock="release" if ex.locked else "none"):
                    self.stats.incr(f"workflows_finished|{ex.inst.workflow_type}|completed")
                    self.stats.observe("workflow_duration", now - ex.inst.created_at)
                    return
                continue
            if a is Action.FAIL:
                ex.record(ev.WorkflowFailed(ex.inst.workflow_id, now, d.steps[0] if d.steps else None, d.reason))
                self._begin_compensation(ex, now, d.reason)
                continue
            if a is Action.TIMEOUT:
                self._time_out(ex, now)
                continue
            if a is Action.BEGIN_COMPENSATION:
                self._begin_compensation(ex, now, d.reason)
                continue
            if a is Action.COMPENSATION_TIMEOUT:
                budget = (ex.inst.compensation_deadline or now) - (ex.inst.compensation_started_at or now)
                ex.record(
                    ev.CompensationTimeout(
                        ex.inst.workflow_id, now, now - (ex.inst.compensation_started_at or now), budget
                    )
                )
                self.stats.incr(f"compensation_timeouts|{ex.inst.workflow_type}")
                continue
            if a is Action.COMPENSATE:
                self._compensate(ex, d.steps[0], now, t_decide)
                continue
            if a is Action.FINISH_COMPENSATION:
                failed = list(ex.inst.failed_compensations)
                attention = bool(failed) or ex.inst.compensation_timed_out
                reason = ex.inst.compensation_reason or "failed"
                ex.record(ev.WorkflowCompensated(ex.inst.workflow_id, now, reason, attention, failed))
                if self._flush(ex, sched="del", lock="release" if ex.locked else "none"):
                    self.stats.incr(f"workflows_finished|{ex.inst.workflow_type}|compensated")
                    self.stats.observe("workflow_duration", now - ex.inst.created_at)
                    return
                continue
            raise AssertionError(f"unhandled decision {d}")

    # ------------------------------------------------------------------ forward
    def _start_steps(self, ex: SagaExecution, step_ids: tuple[str, ...], now: float) -> None:
        variables = ex.inst.context.variables
        for sid in step_ids:
            step = ex.inst.step(sid)
            attempt = step.attempt + 1
            ex.record(
                ev.StepStarted(
                    ex.inst.workflow_id, now, sid, attempt, self._idempotency_key(ex, sid, attempt), dict(variables)
                )
            )

    def _idempotency_key(self, ex: SagaExecution, sid: str, attempt: int, phase: str = "") -> str:
        template = ex.definition.step(sid).idempotency_key
        suffix = f":{phase}" if phase else ""
        if template:
            try:
                base = template.format_map(
                    {**ex.inst.context.variables, "workflow_id": ex.inst.workflow_id, "step_id": sid}
                )
            except (KeyError, ValueError, IndexError):
                base = f"{ex.inst.workflow_id}:{sid}"
            return base + suffix
        if ex.inst.consistency.stable_idempotency_key:
            return f"{ex.inst.workflow_id}:{sid}{suffix}"
        # EVENTUAL / AT_LEAST_ONCE promise no deduplication: a key per execution.
        return f"{ex.inst.workflow_id}:{sid}{suffix}:{attempt}:{ex.fence or 0}"

    def _context(self, ex: SagaExecution, sid: str, phase: str, key: str, attempt: int) -> StepContext:
        step = ex.inst.step(sid)
        source = step.input if step.input is not None else ex.inst.context.variables
        return StepContext(
            workflow_id=ex.inst.workflow_id,
            workflow_type=ex.inst.workflow_type,
            step_id=sid,
            attempt=attempt,
            idempotency_key=key,
            correlation_id=ex.inst.correlation_id,
            input=fast_copy(source),
            phase=phase,
            output=fast_copy(step.output) if phase == "compensation" else None,
            headers=dict(ex.inst.context.headers),
            tracing=dict(ex.inst.context.tracing),
            deadline=ex.inst.deadline,
            consistency=ex.inst.consistency.value,
        )

    def _execute(self, ex: SagaExecution, step_ids: tuple[str, ...]) -> None:
        now = self.clock()
        calls = []
        for sid in step_ids:
            sd = ex.definition.step(sid)
            se = ex.inst.step(sid)
            ctx = self._context(ex, sid, "forward", se.idempotency_key or "", se.attempt)
            timeout = max(min(sd.timeout, ex.inst.deadline - now), 0.001)
            calls.append((sid, _bind(self.port.execute_step, sd.action, ctx), timeout))
        if len(calls) == 1 and not ex.inflight and self.executor.can_run_inline():
            sid, fn, timeout = calls[0]
            self._record_forward(ex, sid, self.executor.run_inline(fn, timeout))
            return
        for sid, fn, timeout in calls:
            ex.inflight[sid] = self.executor.submit(sid, fn, timeout, ex.notify)

    def _await_inflight(self, ex: SagaExecution, until: float | None) -> None:
        until_mono = None if until is None else time.monotonic() + max(until - self.clock(), 0.0)
        for pending in self.executor.wait_any(list(ex.inflight.values()), until_mono):
            del ex.inflight[pending.key]
            self._record_forward(ex, pending.key, pending.outcome or Outcome(False, error=RuntimeError("lost")))

    def _record_forward(self, ex: SagaExecution, sid: str, outcome: Outcome) -> None:
        now = self.clock()
        se = ex.inst.step(sid)
        if se.status is not StepStatus.RUNNING:
            return  # given up meanwhile (deadline); its result no longer counts
        self.stats.observe("step_execution", outcome.elapsed)
        if outcome.ok:
            output = getattr(outcome.value, "output", outcome.value)
            if is_json_value(output):
                ex.record(ev.StepExecuted(ex.inst.workflow_id, now, sid, se.attempt, outcome.elapsed, output))
                self.stats.incr(f"steps|{ex.inst.workflow_type}|{sid}|completed")
                return
            outcome = Outcome(
                False, error=StepError("step output is not JSON-serialisable", retryable=False), elapsed=outcome.elapsed
            )
        sd = ex.definition.step(sid)
        error = outcome.error
        error_type, mro, flagged = _classify(error)
        uncertain = error_type == "StepTimeout"
        retryable = sd.retry.is_retryable(error_type, mro, flagged)
        forward = ex.inst.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)
        will_retry = forward and retryable and se.attempt < sd.retry.max_attempts
        next_at = now + self._delay(sd.retry, se.attempt) if will_retry else None
        ex.record(
            ev.StepFailed(
                ex.inst.workflow_id,
                now,
                sid,
                se.attempt,
                _message(error),
                error_type,
                will_retry,
                next_at,
                uncertain,
                outcome.elapsed,
            )
        )
        self.stats.incr(f"steps|{ex.inst.workflow_type}|{sid}|{'retried' if will_retry else 'failed'}")

    def _delay(self, policy: RetryPolicy, retry_number: int) -> float:
        custom = None
        if policy.backoff is BackoffStrategy.CUSTOM and policy.custom and self.resolve_custom:
            custom = self.resolve_custom(policy.custom)
        return policy.next_delay(retry_number, self.rng, custom)

    def _recover(self, ex: SagaExecution, step_ids: tuple[str, ...], now: float) -> None:
        """Steps recorded RUNNING that nobody executes: a worker died or lost its lease mid-step."""
        forward = ex.inst.status is WorkflowStatus.RUNNING
        for sid in step_ids:
            se = ex.inst.step(sid)
            if forward and se.idempotent:
                key = self._idempotency_key(ex, sid, se.attempt)
                ex.record(ev.StepStarted(ex.inst.workflow_id, now, sid, se.attempt, key, se.input or {}, True))
                self.stats.incr(f"steps|{ex.inst.workflow_type}|{sid}|recovered")
                if ex.inst.consistency.persists_before_each_step and not self._flush(ex):
                    return
                self._execute(ex, (sid,))
                return
            reason = (
                "interrupted mid-flight; step is not idempotent, so it is not re-run"
                if not se.idempotent
                else "interrupted mid-flight while the saga stopped moving forward"
            )
            ex.record(
                ev.StepFailed(ex.inst.workflow_id, now, sid, se.attempt, reason, "StepInterrupted", False, None, True)
            )

    def _time_out(self, ex: SagaExecution, now: float) -> None:
        for sid in list(ex.inflight):
            se = ex.inst.step(sid)
            del ex.inflight[sid]
            ex.record(
                ev.StepFailed(
                    ex.inst.workflow_id,
                    now,
                    sid,
                    se.attempt,
                    "abandoned at the workflow deadline",
                    "StepTimeout",
                    False,
                    None,
                    True,
                )
            )
        last = ex.inst.last_executed_step()
        ex.record(ev.WorkflowTimeout(ex.inst.workflow_id, now, last, now - ex.inst.created_at))
        self.stats.incr(f"workflows_timed_out|{ex.inst.workflow_type}")
        self._begin_compensation(ex, now, "timeout")

    # ------------------------------------------------------------------ backward
    def _begin_compensation(self, ex: SagaExecution, now: float, reason: str) -> None:
        forward_time = now - (ex.inst.started_at or ex.inst.created_at)
        stack = ex.inst.stack_when_compensating()
        ex.record(
            ev.CompensationStarted(
                ex.inst.workflow_id, now, reason, list(reversed(stack)), now + compensation_budget(forward_time)
            )
        )
        self.stats.incr(f"compensations_started|{ex.inst.workflow_type}")

    def _compensate(self, ex: SagaExecution, sid: str, now: float, t_decide: float) -> None:
        sd = ex.definition.step(sid)
        comp = sd.compensation
        se = ex.inst.step(sid)
        assert comp is not None
        wid = ex.inst.workflow_id
        if comp.type is CompensationType.MANUAL and comp.action is None:
            if se.comp_operator_retry:
                ex.record(ev.StepCompensated(wid, now, sid, se.comp_attempt + 1, "operator", 0.0))
            else:
                ex.record(ev.CompensationParked(wid, now, sid, comp.note))
                self.stats.incr(f"compensations|{ex.inst.workflow_type}|parked")
            return
        if comp.type is CompensationType.MANUAL and not se.comp_operator_retry:
            ex.record(ev.CompensationParked(wid, now, sid, comp.note))
            self.stats.incr(f"compensations|{ex.inst.workflow_type}|parked")
            return
        use_alternative = comp.type is CompensationType.ALTERNATIVE and (
            comp.action is None or (se.comp_via == "action" and se.comp_error is not None)
        )
        via = "alternative" if use_alternative else "action"
        ref: ActionRef | None = comp.alternative if use_alternative else comp.action
        attempt = se.comp_attempt + 1
        key = self._idempotency_key(ex, sid, attempt, phase="compensate")
        ex.record(ev.CompensationStepStarted(wid, now, sid, attempt, via, key))
        if ex.inst.consistency.persists_before_each_step and not self._flush(ex):
            return
        self.stats.observe("compensation_overhead", time.perf_counter() - t_decide)
        ctx = self._context(ex, sid, "compensation", key, attempt)
        timeout = comp.timeout or sd.timeout
        fn = _bind(self.port.compensate_step, ref, ctx)
        if self.executor.can_run_inline():
            outcome = self.executor.run_inline(fn, timeout)
        else:
            pending = self.executor.submit(sid, fn, timeout, ex.notify)
            while not self.executor.wait_any([pending], None):
                pass
            outcome = pending.outcome or Outcome(False, error=RuntimeError("lost"))
        now = self.clock()
        self.stats.observe("compensation_execution", outcome.elapsed)
        if outcome.ok:
            ex.record(ev.StepCompensated(wid, now, sid, attempt, via, outcome.elapsed))
            self.stats.incr(f"compensations|{ex.inst.workflow_type}|compensated")
            return
        error_type, _, _ = _classify(outcome.error)
        will_retry, next_at = False, None
        if comp.type is CompensationType.RETRY and attempt <= comp.max_retries:
            will_retry = True
            backoff = RetryPolicy(
                backoff=BackoffStrategy.EXPONENTIAL,
                initial_delay=comp.retry_delay,
                max_delay=max(comp.retry_delay, 60.0),
            )
            next_at = now + backoff.next_delay(attempt, self.rng)
        elif comp.type is CompensationType.ALTERNATIVE and via == "action" and comp.alternative is not None:
            will_retry, next_at = True, now
        ex.record(
            ev.CompensationFailed(wid, now, sid, attempt, _message(outcome.error), error_type, will_retry, next_at)
        )
        self.stats.incr(f"compensations|{ex.inst.workflow_type}|{'retried' if will_retry else 'failed'}")

    # ------------------------------------------------------------------ persistence
    def _acquire_locks(self, ex: SagaExecution, now: float) -> bool:
        """STRICT: take every declared resource lock with the start; wait and retry if one is held.

        False when the saga was handed back to wait for a lock."""
        res = self._commit(ex, sched="keep", lock="acquire")
        if res is None:
            return True  # conflict: reloaded, the loop decides again
        if not res.lock_busy:
            return True
        stored = self.repo.load(ex.inst.workflow_id)
        self._reset(ex, stored)
        if not ex.inst.waiting_for_lock:
            ex.record(ev.ResourceLockWaiting(ex.inst.workflow_id, now, list(ex.inst.resources), res.lock_holder or ""))
        # Handed back until the retry; if a control action won meanwhile, decide again instead.
        return not self._flush(ex, sched="set", at_ms=int((now + self.lock_retry_seconds) * 1000))

    def _flush(self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none") -> bool:
        """Commit buffered events. False when a concurrent control action won: the instance was
        reloaded with this worker's step results re-applied, and the caller must decide again."""
        res = self._commit(ex, sched=sched, at_ms=at_ms, lock=lock)
        return res is not None

    def _commit(self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none"):
        if not ex.buffered and sched == "keep" and lock == "none":
            return _NOTHING
        t0 = time.perf_counter()
        try:
            res = self.repo.commit(
                ex.inst,
                ex.buffered,
                expected_version=ex.version,
                old_status=ex.old_status,
                now_ms=int(self.clock() * 1000),
                fence=ex.fence,
                sched=sched,
                sched_at_ms=at_ms,
                lock=lock,
            )
        except ConcurrencyConflict:
            self._reload_after_conflict(ex)
            return None
        self.stats.observe("state_persistence", time.perf_counter() - t0)
        if res.lock_busy:
            return res
        if self.fsync is not None and ex.inst.consistency is ConsistencyLevel.STRICT:
            self.fsync()
        ex.version = res.version
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
        stored = self.repo.load(ex.inst.workflow_id)
        self._reset(ex, stored)
        for e in results:
            try:
                ex.record(e)
            except (IllegalTransition, KeyError):
                log.info("dropping %s of %s after a concurrent change", e.TYPE, ex.inst.workflow_id)

    def _reset(self, ex: SagaExecution, stored: StoredWorkflow) -> None:
        ex.inst = stored.instance
        ex.version = stored.version
        ex.old_status = stored.instance.status
        ex.buffered.clear()
        # A control action never takes the lease, so the fence is unchanged.

    # ================================================================== consistency
    def validate_saga_consistency(self, wid: str) -> ConsistencyReport:
        """Replay the workflow's events and compare with the stored snapshot (seed: validateSagaConsistency)."""
        stored = self.repo.load(wid)
        replayed = self.repo.replay(wid)
        versions = self.repo.event_versions(wid)
        a, b = stored.instance.to_dict(), replayed.to_dict()
        diffs = [
            f"{k}: stored {a.get(k)!r} != replayed {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)
        ]
        sequential = versions == list(range(1, len(versions) + 1))
        return ConsistencyReport(
            wid,
            not diffs and sequential and stored.version == replayed.version,
            stored.version,
            replayed.version,
            sequential,
            diffs,
        )


class _Nothing:
    lock_busy = False
    enqueue = False


_NOTHING = _Nothing()


def new_workflow_id() -> str:
    """Time-ordered, URL- and RQ-safe: 12 hex digits of ms since epoch + 20 random hex digits."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


def _bind(method: Callable, ref: ActionRef | None, ctx: StepContext) -> Callable[[], Any]:
    if ref is None:
        raise ConfigurationError(f"step {ctx.step_id} has no {ctx.phase} action")
    return lambda: method(ref, ctx)


def _classify(error: BaseException | None) -> tuple[str, tuple[str, ...], bool]:
    if error is None:
        return "UnknownError", (), True
    error_type = getattr(error, "error_type", None) or type(error).__name__
    mro = tuple(c.__name__ for c in type(error).__mro__)
    return error_type, mro, bool(getattr(error, "retryable", True))


def _message(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error) or type(error).__name__
    return text[:2000]


def _result(inst: WorkflowInstance) -> dict[str, Any]:
    return {s.step_id: s.output for s in inst.steps if s.output is not None}


def step_definitions(definition: WorkflowDefinition) -> dict[str, StepDefinition]:
    return {s.id: s for s in definition.steps}
