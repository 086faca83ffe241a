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
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.domain import events as ev
from engine.domain.definition import StepDefinition, WorkflowDefinition
from engine.domain.instance import WorkflowInstance
from engine.domain.policies import ActionRef, RetryPolicy, compensation_budget
from engine.domain.saga import Action, Decision, decide
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
    IllegalTransition,
    LeaseLost,
    StepError,
)
from engine.persistence.codec import is_json_value
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.fastpath import ResendNeeded
from engine.persistence.workflow_repository import (
    CommitRequest,
    CommitResult,
    CreateResult,
    StoredWorkflow,
    WorkflowRepository,
)
from engine.ports import ServiceIntegrationPort, StepContext
from engine.saga.executor import Outcome, Pending, StepExecutor
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

_BACKWARD = frozenset(
    {Action.BEGIN_COMPENSATION, Action.COMPENSATE, Action.COMPENSATION_TIMEOUT, Action.FINISH_COMPENSATION}
)

EVENTUAL_FLUSH_EVERY = 32
"""EVENTUAL sagas persist lazily: at waits, at the end, and at least every this many events."""
PERSISTENCE_PROBE_EVERY = 8
"""With commits pipelined, one in this many is sent alone and timed for the persistence SLA."""
SNAPSHOT_EVERY = 16
"""Most events a reader replays on top of the stored snapshot."""


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
    snapshot_version: int = 0
    inflight: dict[str, Pending] = field(default_factory=dict)
    notify: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self._step_defs = {s.id: s for s in self.definition.steps}

    def step_def(self, sid: str) -> StepDefinition:
        return self._step_defs[sid]

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
        self.pipeline_depth = max(1, pipeline_depth)
        self._commits = 0
        self._plans: dict[str, list[dict[str, Any]]] = {}

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
        created = ev.WorkflowCreated(
            workflow_id=wid,
            at=now,
            workflow_type=definition.name,
            definition_version=int(definition.version or 0),
            consistency=level.value,
            input=data,
            correlation_id=correlation_id or wid,
            deadline=now + definition.timeout,
            plan=self._plan(definition),
            headers=dict(headers or {}),
            security=dict(security or {}),
            tracing={"trace_id": uuid.uuid4().hex},
            resources=resources,
        )
        inst = WorkflowInstance.create(created)
        result = self.repo.create(inst, int(now * 1000), idempotency_key=idempotency_key, schedule=schedule)
        if result.enqueue:
            self.request_dispatch()
        self.stats.observe("workflow_start", time.perf_counter() - t0, (definition.name,))
        if result.created:
            self.stats.incr("workflows_started", (definition.name,))
        return result

    def _plan(self, definition: WorkflowDefinition) -> list[dict[str, Any]]:
        """The steps as an instance records them; computed once per definition version."""
        plan = self._plans.get(definition.definition_id)
        if plan is None:
            deps = definition.dependencies()
            plan = [
                {
                    "id": s.id,
                    "depends_on": list(deps[s.id]),
                    "target": s.action.target,
                    "step_type": s.action.kind,
                    "compensation_type": s.compensation.type.value if s.compensation else "",
                    "idempotent": s.idempotent,
                }
                for s in definition.steps
            ]
            self._plans[definition.definition_id] = plan
        return plan

    # ================================================================== advance
    def advance(self, stored: StoredWorkflow) -> None:
        """Run one claimed saga as far as it can go now."""
        self.advance_many([stored])

    def advance_many(self, batch: Sequence[StoredWorkflow]) -> int:
        """Run claimed sagas as far as each can go now. Returns how many were advanced.

        Each saga is a generator (``_run``) that yields a CommitRequest and is resumed with its
        result, or has the per-saga error (conflict, lost lease) thrown into it. Up to
        ``pipeline_depth`` commits are in flight: while one saga's commit travels to Redis and
        back, the worker runs another saga's step, so it does not sit idle for the round trip,
        and each commit is still sent the moment it is ready."""
        ready: deque[tuple[str, Generator, Any]] = deque()
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
            ready.append((inst.workflow_id, self._run(ex), None))
        advanced = len(ready)
        inflight: deque[tuple[str, Generator, CommitRequest]] = deque()
        try:
            while ready or inflight:
                while ready and len(inflight) < self.pipeline_depth:
                    wid, gen, value = ready.popleft()
                    request = self._resume(wid, gen, value)
                    if request is None:
                        continue
                    self._commits += 1
                    if self.pipeline_depth == 1 or self._commits % PERSISTENCE_PROBE_EVERY == 0:
                        # Timed on its own: with other commits in flight, the time to a reply would
                        # include this worker's work on other sagas, which is not persistence. The
                        # timed span is the round trip only: encoding happens before it (a garbage
                        # collection there would be the worker's pause, not Redis's).
                        while inflight:
                            ready.append(self._receive(inflight))
                        prepared = self.repo.prepare_commit(request)
                        started = time.perf_counter()
                        self.repo.send_commit(request, prepared)
                        reply = self._receive_raw(request, prepared)
                        elapsed = time.perf_counter() - started
                        self.stats.observe("state_persistence", elapsed)
                        if request.events:
                            # The events are appended to the workflow's stream and the global feed
                            # in this same atomic commit: its round trip is their publishing time.
                            self.stats.observe("event_publish", elapsed)
                        ready.appendleft((wid, gen, self.repo.commit_result(request, reply)))
                    else:
                        self.repo.send_commit(request)
                        inflight.append((wid, gen, request))
                if inflight:
                    ready.appendleft(self._receive(inflight))
        except BaseException:
            # Replies may be left unread on the pipelined connection: it cannot be trusted any more.
            self.repo.reset_pipeline()
            raise
        return advanced

    def _receive(self, inflight: deque) -> tuple[str, Generator, Any]:
        """The result of the oldest commit in flight, sent again as long as its script must be loaded."""
        while True:
            wid, gen, request = inflight[0]
            try:
                reply = self.repo.receive_reply()
            except ResendNeeded:
                inflight.popleft()
                self.repo.send_commit(request)
                inflight.append((wid, gen, request))
                continue
            inflight.popleft()
            return wid, gen, self.repo.commit_result(request, reply)

    def _receive_raw(self, request: CommitRequest, prepared: tuple) -> Any:
        """The reply to the one commit in flight (the timed probe)."""
        while True:
            try:
                return self.repo.receive_reply()
            except ResendNeeded:
                self.repo.send_commit(request, prepared)

    def _resume(self, wid: str, gen: Generator, value: Any) -> CommitRequest | None:
        """Run a saga up to its next commit; None once it is done (or fenced out)."""
        try:
            return gen.throw(value) if isinstance(value, Exception) else gen.send(value)
        except StopIteration:
            self.leases.drop(wid)
        except LeaseLost as exc:
            log.warning("%s", exc)
            self.leases.drop(wid)
        except Exception:
            self.leases.drop(wid)
            raise
        return None

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
            if d.action in _BACKWARD:
                finished = yield from self.execute_backward_recovery(ex, d, now, t_decide)
            else:
                finished = yield from self.execute_forward_recovery(ex, d, now, t_decide)
            if finished:
                return

    def execute_forward_recovery(
        self, ex: SagaExecution, d: Decision, now: float, t_decide: float
    ) -> Generator[CommitRequest, Any, bool]:
        """One forward move: start, run ready steps (retrying failed attempts with backoff), recover
        interrupted ones, wait, complete, or give up (failure, deadline). True when the saga is
        handed back or done."""
        a = d.action
        if a is Action.START:
            ex.record(ev.WorkflowStarted(ex.inst.workflow_id, now, ex.inst.workflow_type, ex.inst.correlation_id))
            if ex.locked:
                return not (yield from self._acquire_locks(ex, now))
            return False
        if a is Action.RUN:
            self._start_steps(ex, d.steps, now)
            persist = ex.inst.consistency.persists_before_each_step or len(ex.buffered) >= EVENTUAL_FLUSH_EVERY
            if persist and not (yield from self._flush(ex)):
                return False
            self.stats.observe("step_overhead", time.perf_counter() - t_decide, (ex.inst.workflow_type,))
            self._execute(ex, d.steps)
            return False
        if a is Action.RECOVER:
            yield from self._recover(ex, d.steps, now)
            return False
        if a is Action.WAIT_INFLIGHT:
            self._await_inflight(ex, d.until)
            return False
        if a is Action.WAIT:
            return (yield from self._flush(ex, sched="set", at_ms=int((d.until or now) * 1000)))
        if a is Action.COMPLETE:
            ex.record(
                ev.WorkflowCompleted(ex.inst.workflow_id, now, now, result=_result(ex.inst), metrics=ex.inst.metrics())
            )
            if (yield from self._flush(ex, sched="del", lock="release" if ex.locked else "none")):
                self.stats.incr(
                    "workflows_finished",
                    (
                        ex.inst.workflow_type,
                        "completed",
                    ),
                )
                self.stats.observe("workflow_duration", now - ex.inst.created_at, (ex.inst.workflow_type, "completed"))
                return True
            return False
        if a is Action.FAIL:
            ex.record(ev.WorkflowFailed(ex.inst.workflow_id, now, d.steps[0] if d.steps else None, d.reason))
            self._begin_compensation(ex, now, d.reason)
            return False
        if a is Action.TIMEOUT:
            self._time_out(ex, now)
            return False
        raise AssertionError(f"unhandled forward decision {d}")

    def execute_backward_recovery(
        self, ex: SagaExecution, d: Decision, now: float, t_decide: float
    ) -> Generator[CommitRequest, Any, bool]:
        """One backward move: begin compensating, compensate the top of the stack (LIFO), flag an
        overrun of the compensation budget, or finish. True when the saga is done."""
        a = d.action
        if a is Action.BEGIN_COMPENSATION:
            self._begin_compensation(ex, now, d.reason)
            return False
        if a is Action.COMPENSATION_TIMEOUT:
            started = ex.inst.compensation_started_at or now
            budget = (ex.inst.compensation_deadline or now) - started
            ex.record(ev.CompensationTimeout(ex.inst.workflow_id, now, now - started, budget))
            self.stats.incr("compensation_timeouts", (ex.inst.workflow_type,))
            return False
        if a is Action.COMPENSATE:
            yield from self.compensate_step(ex, d.steps[0], now, t_decide)
            return False
        if a is Action.FINISH_COMPENSATION:
            failed = list(ex.inst.failed_compensations)
            attention = bool(failed) or ex.inst.compensation_timed_out
            reason = ex.inst.compensation_reason or "failed"
            comp_started = ex.inst.compensation_started_at
            ex.record(ev.WorkflowCompensated(ex.inst.workflow_id, now, reason, attention, failed))
            if (yield from self._flush(ex, sched="del", lock="release" if ex.locked else "none")):
                wtype = ex.inst.workflow_type
                self.stats.incr(
                    "workflows_finished",
                    (
                        wtype,
                        "compensated",
                    ),
                )
                self.stats.observe("workflow_duration", now - ex.inst.created_at, (wtype, "compensated"))
                if comp_started:
                    self.stats.observe("compensation_duration", now - comp_started, (wtype,))
                return True
            return False
        raise AssertionError(f"unhandled backward decision {d}")

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
        template = ex.step_def(sid).idempotency_key
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
            sd = ex.step_def(sid)
            se = ex.inst.step(sid)
            ctx = self._context(ex, sid, "forward", se.idempotency_key or "", se.attempt)
            timeout = max(min(sd.timeout, ex.inst.deadline - now), 0.001)
            ctx.timeout = timeout
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
        self.stats.observe("step_execution", outcome.elapsed, (ex.inst.workflow_type, sid))
        if outcome.ok:
            output = getattr(outcome.value, "output", outcome.value)
            if is_json_value(output):
                ex.record(ev.StepExecuted(ex.inst.workflow_id, now, sid, se.attempt, outcome.elapsed, output))
                self.stats.incr(
                    "steps",
                    (
                        ex.inst.workflow_type,
                        sid,
                        "completed",
                    ),
                )
                return
            outcome = Outcome(
                False, error=StepError("step output is not JSON-serialisable", retryable=False), elapsed=outcome.elapsed
            )
        sd = ex.step_def(sid)
        error = outcome.error
        error_type, mro, flagged = _classify(error)
        uncertain = error_type == "StepTimeout"
        retryable = sd.retry.is_retryable(error_type, mro, flagged)
        forward = ex.inst.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)
        will_retry = forward and retryable and se.attempt < sd.retry.max_attempts
        # A call refused by an open breaker waits at least until the breaker lets a trial through.
        not_before = float(getattr(error, "retry_after", 0.0) or 0.0)
        next_at = now + max(self._delay(sd.retry, se.attempt), not_before) if will_retry else None
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
        self.stats.incr(
            "steps",
            (
                ex.inst.workflow_type,
                sid,
                "retried" if will_retry else "failed",
            ),
        )

    def _delay(self, policy: RetryPolicy, retry_number: int) -> float:
        custom = None
        if policy.backoff is BackoffStrategy.CUSTOM and policy.custom and self.resolve_custom:
            custom = self.resolve_custom(policy.custom)
        return policy.next_delay(retry_number, self.rng, custom)

    def _recover(self, ex: SagaExecution, step_ids: tuple[str, ...], now: float) -> Generator[CommitRequest, Any, None]:
        """Steps recorded RUNNING that nobody executes: a worker died or lost its lease mid-step."""
        forward = ex.inst.status is WorkflowStatus.RUNNING
        for sid in step_ids:
            se = ex.inst.step(sid)
            if forward and se.idempotent:
                key = self._idempotency_key(ex, sid, se.attempt)
                ex.record(ev.StepStarted(ex.inst.workflow_id, now, sid, se.attempt, key, se.input or {}, True))
                self.stats.incr(
                    "steps",
                    (
                        ex.inst.workflow_type,
                        sid,
                        "recovered",
                    ),
                )
                if ex.inst.consistency.persists_before_each_step and not (yield from self._flush(ex)):
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
        self.stats.incr("workflows_timed_out", (ex.inst.workflow_type,))
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
        self.stats.incr("compensations_started", (ex.inst.workflow_type,))

    def compensate_step(
        self, ex: SagaExecution, sid: str, now: float, t_decide: float
    ) -> Generator[CommitRequest, Any, None]:
        """Compensate one step by its CompensationAction type (UNDO, RETRY, ALTERNATIVE, MANUAL)."""
        sd = ex.step_def(sid)
        comp = sd.compensation
        se = ex.inst.step(sid)
        assert comp is not None
        wid = ex.inst.workflow_id
        if comp.type is CompensationType.MANUAL and comp.action is None:
            if se.comp_operator_retry:
                ex.record(ev.StepCompensated(wid, now, sid, se.comp_attempt + 1, "operator", 0.0))
            else:
                ex.record(ev.CompensationParked(wid, now, sid, comp.note))
                self.stats.incr(
                    "compensations",
                    (
                        ex.inst.workflow_type,
                        "parked",
                    ),
                )
            return
        if comp.type is CompensationType.MANUAL and not se.comp_operator_retry:
            ex.record(ev.CompensationParked(wid, now, sid, comp.note))
            self.stats.incr(
                "compensations",
                (
                    ex.inst.workflow_type,
                    "parked",
                ),
            )
            return
        use_alternative = comp.type is CompensationType.ALTERNATIVE and (
            comp.action is None or (se.comp_via == "action" and se.comp_error is not None)
        )
        via = "alternative" if use_alternative else "action"
        ref: ActionRef | None = comp.alternative if use_alternative else comp.action
        attempt = se.comp_attempt + 1
        key = self._idempotency_key(ex, sid, attempt, phase="compensate")
        ex.record(ev.CompensationStepStarted(wid, now, sid, attempt, via, key))
        if ex.inst.consistency.persists_before_each_step and not (yield from self._flush(ex)):
            return
        self.stats.observe("compensation_overhead", time.perf_counter() - t_decide, (ex.inst.workflow_type,))
        ctx = self._context(ex, sid, "compensation", key, attempt)
        timeout = comp.timeout or sd.timeout
        ctx.timeout = timeout
        fn = _bind(self.port.compensate_step, ref, ctx)
        if self.executor.can_run_inline():
            outcome = self.executor.run_inline(fn, timeout)
        else:
            pending = self.executor.submit(sid, fn, timeout, ex.notify)
            while not self.executor.wait_any([pending], None):
                pass
            outcome = pending.outcome or Outcome(False, error=RuntimeError("lost"))
        now = self.clock()
        self.stats.observe("compensation_execution", outcome.elapsed, (ex.inst.workflow_type, sid))
        if outcome.ok:
            ex.record(ev.StepCompensated(wid, now, sid, attempt, via, outcome.elapsed))
            self.stats.incr(
                "compensations",
                (
                    ex.inst.workflow_type,
                    "compensated",
                ),
            )
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
            # As for a forward step: a call refused by an open breaker waits until it admits a trial.
            not_before = float(getattr(outcome.error, "retry_after", 0.0) or 0.0)
            next_at = now + max(backoff.next_delay(attempt, self.rng), not_before)
        elif comp.type is CompensationType.ALTERNATIVE and via == "action" and comp.alternative is not None:
            will_retry, next_at = True, now
        ex.record(
            ev.CompensationFailed(wid, now, sid, attempt, _message(outcome.error), error_type, will_retry, next_at)
        )
        self.stats.incr(
            "compensations",
            (
                ex.inst.workflow_type,
                "retried" if will_retry else "failed",
            ),
        )

    # ------------------------------------------------------------------ persistence
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
        ex.snapshot_version = stored.snapshot_version
        ex.old_status = stored.instance.status
        ex.buffered.clear()
        # A control action never takes the lease, so the fence is unchanged.

    # ================================================================== consistency
    def validate_saga_consistency(self, wid: str) -> ConsistencyReport:
        """Replay the workflow's events and compare with what is stored (seed: validateSagaConsistency):
        the last written snapshot must equal the replay of the events up to its version, and the
        stored state (snapshot plus the events after it) the replay of all of them."""
        stored = self.repo.load(wid)
        events = [e for _, _, e in self.repo.events(wid)]
        versions = self.repo.event_versions(wid)
        raw_snapshot, snapshot_version = self.repo.stored_snapshot(wid)
        replayed = WorkflowInstance.replay(events)
        prefix = WorkflowInstance.replay(events[:snapshot_version]).to_dict()
        written = WorkflowInstance.from_dict(raw_snapshot).to_dict()
        diffs = _diff("stored", stored.instance.to_dict(), "replayed", replayed.to_dict())
        diffs += _diff(f"snapshot v{snapshot_version}", written, "replayed prefix", prefix)
        sequential = versions == list(range(1, len(versions) + 1))
        return ConsistencyReport(
            wid,
            not diffs and sequential and stored.version == replayed.version,
            stored.version,
            replayed.version,
            sequential,
            diffs,
        )


def _diff(a_name: str, a: dict, b_name: str, b: dict) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a_name} {a.get(k)!r} != {b_name} {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


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
