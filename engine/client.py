"""EngineClient: the facade every caller outside the workers uses (CLI, API, tests).

It implements the seed's WorkflowExecutionService (``engine.ports.WorkflowExecutionService``:
start, pause, resume, cancel, status) plus definitions, queries and the operator's retry of failed
compensations.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rq import Queue

from engine.domain import events as ev
from engine.domain.coordinator import SagaCoordinator
from engine.domain.definition import WorkflowDefinition, parse_definition
from engine.domain.instance import WorkflowInstance
from engine.domain.policies import compensation_budget
from engine.domain.status import ConsistencyLevel, WorkflowStatus, is_terminal
from engine.errors import (
    ConcurrencyConflict,
    ConsistencyUnavailable,
    DefinitionError,
    EngineError,
    IllegalTransition,
)
from engine.integration.http_service import HttpServicePort
from engine.integration.ports import IntegrationPort
from engine.integration.python_handlers import HandlerResolver, PythonHandlerPort
from engine.metrics import recorder_for
from engine.persistence.connection import connect, resolve_url
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.service_registry import ServiceRegistry
from engine.persistence.stats_store import StatsStore
from engine.persistence.workflow_repository import Page, WorkflowRepository
from engine.saga.queueing import dispatch_queue, enqueue_dispatch
from engine.saga.runtime import strict_supported
from engine.saga.service import ConsistencyReport, SagaCoordinatorService
from engine.settings import EngineSettings
from engine.stats import StatsRecorder

CONTROL_RETRIES = 20


class EngineClient:
    def __init__(self, settings: EngineSettings | None = None, url: str | None = None):
        self.settings = settings or EngineSettings()
        self.url = url or resolve_url(self.settings)
        self.r = connect(self.settings, url=self.url)
        self._rq: Queue | None = None
        self.repo = WorkflowRepository(self.r, self.settings)
        self.definitions = DefinitionRepository(self.r, self.settings)
        self.resolver = HandlerResolver()
        self.services = ServiceRegistry(self.r, self.settings)
        self.stats_store = StatsStore(self.r, self.settings.key_prefix)
        self.metrics = recorder_for(self.settings.metrics_enabled)
        stats = StatsRecorder(sink=self.metrics)
        self.port = IntegrationPort(PythonHandlerPort(self.resolver), HttpServicePort(self.services, stats=stats))
        self.service = SagaCoordinatorService(
            self.repo,
            self.definitions,
            self.port,
            stats=stats,
            request_dispatch=self._enqueue,
        )
        self._strict_checked: tuple[float, str | None] | None = None
        self._stats_flushed = time.monotonic()
        self._flusher: threading.Thread | None = None

    def _enqueue(self) -> None:
        if self._rq is None:
            self._rq = dispatch_queue(connect(self.settings, decode=False, url=self.url), self.settings.key_prefix)
        enqueue_dispatch(self._rq)

    def ping(self) -> bool:
        return bool(self.r.ping())

    # ================================================================== definitions
    def apply_definition(
        self, definition: WorkflowDefinition | Mapping[str, Any], *, check_handlers: bool = True
    ) -> tuple[WorkflowDefinition, bool]:
        """Validate (structure, handlers) and store; returns the stored version and whether it is new."""
        if not isinstance(definition, WorkflowDefinition):
            definition = parse_definition(definition)
        definition.validate()
        if check_handlers:
            problems = self.handler_problems(definition)
            if problems:
                raise DefinitionError(problems, definition.name)
        return self.definitions.save(definition)

    def handler_problems(self, definition: WorkflowDefinition) -> list[str]:
        problems: list[str] = []
        for step in definition.steps:
            refs = [("action", step.action)]
            if step.compensation is not None:
                refs += [
                    ("compensation.action", step.compensation.action),
                    ("compensation.alternative", step.compensation.alternative),
                ]
            for where, ref in refs:
                if ref is not None:
                    problems += [f"step {step.id!r} {where}: {p}" for p in self.port.problems(ref)]
            if step.retry.custom:
                problem = self.resolver.problem(step.retry.custom)
                if problem:
                    problems.append(f"step {step.id!r} retry.custom: {problem}")
        return problems

    def apply_file(self, path: str | Path) -> list[tuple[WorkflowDefinition, bool]]:
        return [self.apply_definition(d) for d in load_definitions(path)]

    def get_definition(self, name: str, version: int | None = None) -> WorkflowDefinition:
        found = self.definitions.get(name, version)
        return replace(found, active=found.version in self.definitions.active_versions(name))

    def list_definitions(self, active_only: bool = False) -> list[WorkflowDefinition]:
        if active_only:
            return self.definitions.find_active_definitions()
        return self.definitions.all_definitions()

    def set_definition_active(self, name: str, version: int, active: bool) -> None:
        self.definitions.set_active(name, version, active)

    # ================================================================== workflows
    def start(
        self,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        correlation_id: str | None = None,
        consistency: ConsistencyLevel | str | None = None,
        idempotency_key: str | None = None,
        principal: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Persist a new instance and make it runnable. Returns id, status and whether it is new
        (an idempotency key seen before returns the earlier instance)."""
        definition = self.definitions.get(name, version)
        level = ConsistencyLevel(str(consistency).upper()) if consistency else definition.consistency
        if level is ConsistencyLevel.STRICT:
            problem = self._strict_problem()
            if problem:
                raise ConsistencyUnavailable(problem)
        res = self.service.start_saga(
            definition,
            input,
            correlation_id=correlation_id,
            consistency=level,
            idempotency_key=idempotency_key,
            headers=headers,
            security={"principal": principal} if principal else {},
        )
        self._maybe_flush_stats()
        return {
            "workflow_id": res.workflow_id,
            "status": WorkflowStatus.CREATED.value if res.created else self.repo.status_of(res.workflow_id).value,
            "created": res.created,
            "definition": definition.definition_id,
        }

    def _strict_problem(self) -> str | None:
        if self._strict_checked and time.monotonic() - self._strict_checked[0] < 10:
            return self._strict_checked[1]
        problem = strict_supported(self.r)
        self._strict_checked = (time.monotonic(), problem)
        return problem

    def get(self, wid: str) -> dict[str, Any]:
        return self.repo.snapshot(wid)

    def instance(self, wid: str) -> WorkflowInstance:
        return self.repo.load(wid).instance

    def status(self, wid: str) -> WorkflowStatus:
        return self.repo.status_of(wid)

    def events(self, wid: str, after: str = "-") -> list[dict[str, Any]]:
        return [{"id": eid, "version": v, **e.to_dict()} for eid, v, e in self.repo.events(wid, after=after)]

    def list(
        self,
        *,
        status: WorkflowStatus | str | None = None,
        definition: str | None = None,
        correlation_id: str | None = None,
        requires_attention: bool = False,
        limit: int = 50,
        cursor: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        summary: bool = False,
        order: str = "newest",
    ) -> Page:
        """Newest first (``order="oldest"``: oldest first; a page's ``next_cursor`` continues in the
        same order). ``summary``: id, type, status, correlation id, times and attention only (no
        snapshot read). ``created_after`` (inclusive) / ``created_before`` (exclusive): epoch s."""
        st = WorkflowStatus(str(status).upper()) if status else None
        ids, nxt = self.repo.list_ids(
            status=st,
            definition=definition,
            correlation_id=correlation_id,
            requires_attention=requires_attention,
            limit=limit,
            cursor=cursor,
            created_after_ms=None if created_after is None else int(created_after * 1000),
            created_before_ms=None if created_before is None else int(created_before * 1000),
            order=order,
        )
        return Page(self.repo.summaries(ids) if summary else self.repo.snapshots(ids), nxt)

    def find_by_correlation_id(self, correlation_id: str) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.repo.find_by_correlation_id(correlation_id)]

    def counts(self) -> dict[str, int]:
        return self.repo.count_by_status()

    def wait(self, wid: str, timeout: float = 60.0, until: Callable[[WorkflowStatus], bool] = is_terminal) -> dict:
        """Poll until the workflow's status satisfies ``until`` (default: finished)."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            status = self.repo.status_of(wid)
            if until(status):
                return self.get(wid)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {wid} is still {status.value} after {timeout:.1f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def saga(self, wid: str) -> SagaCoordinator:
        """The seed's SagaCoordinator view: participants, compensation strategy, consistency, saga log."""
        inst = self.instance(wid)
        definition = self.definitions.get(inst.workflow_type, inst.definition_version)
        return SagaCoordinator.of(inst, definition, tuple(e for _, _, e in self.repo.events(wid)))

    def validate_consistency(self, wid: str) -> ConsistencyReport:
        return self.service.validate_saga_consistency(wid)

    # ================================================================== operator controls
    def pause(self, wid: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        def build(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
            if inst.status is not WorkflowStatus.RUNNING:
                raise IllegalTransition(inst.status.value, "PAUSED", "only a RUNNING workflow can be paused")
            return [ev.WorkflowPaused(wid, now, by, reason)]

        return self._control(wid, build)

    def resume(self, wid: str, *, by: str = "") -> dict[str, Any]:
        def build(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
            if inst.status is not WorkflowStatus.PAUSED:
                raise IllegalTransition(inst.status.value, "RUNNING", "only a PAUSED workflow can be resumed")
            return [ev.WorkflowResumed(wid, now, by)]

        return self._control(wid, build)

    def cancel(self, wid: str, *, by: str = "", reason: str = "cancelled") -> dict[str, Any]:
        def build(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
            if inst.status is WorkflowStatus.CREATED:
                return [ev.WorkflowCancelled(wid, now, by, reason)]
            if inst.status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
                raise IllegalTransition(
                    inst.status.value, "CANCELLED", "only CREATED, RUNNING or PAUSED workflows can be cancelled"
                )
            forward = now - (inst.started_at or inst.created_at)
            stack = inst.stack_when_compensating()
            return [
                ev.WorkflowCancelled(wid, now, by, reason),
                ev.CompensationStarted(wid, now, reason, list(reversed(stack)), now + compensation_budget(forward)),
            ]

        return self._control(wid, build)

    def retry_compensation(self, wid: str, steps: Iterable[str] | None = None, *, by: str = "") -> dict[str, Any]:
        def build(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
            chosen = list(steps) if steps else list(inst.failed_compensations)
            return [ev.CompensationRetryRequested(wid, now, chosen, by)]

        return self._control(wid, build)

    def _control(self, wid: str, build: Callable[[WorkflowInstance, float], list[ev.DomainEvent]]) -> dict:
        for _ in range(CONTROL_RETRIES):
            stored = self.repo.load(wid)
            inst = stored.instance
            old = inst.status
            now = time.time()
            for e in build(inst, now):
                inst.record(e)
            events = inst.take_pending()
            sched = "del" if inst.is_terminal else "wake"
            try:
                res = self.repo.commit(
                    inst,
                    events,
                    expected_version=stored.version,
                    old_status=old,
                    now_ms=int(now * 1000),
                    sched=sched,
                )
            except ConcurrencyConflict:
                time.sleep(0.001)
                continue
            if res.enqueue:
                self._enqueue()
            return inst.to_dict()
        raise ConcurrencyConflict(f"workflow {wid} kept changing; control action not applied")

    # ================================================================== stats
    def _maybe_flush_stats(self) -> None:
        now = time.monotonic()
        if now - self._stats_flushed >= self.settings.stats_flush_seconds:
            self._stats_flushed = now
            self.flush_stats()
        if self._flusher is None:
            # What the last starts measured must not wait for the next start to be flushed.
            self._flusher = threading.Thread(
                target=_trailing_flush,
                args=(weakref.ref(self), self.settings.stats_flush_seconds),
                name="wes-client-stats",
                daemon=True,
            )
            self._flusher.start()

    def flush_stats(self) -> None:
        """Write what this client measured (workflow start latency, starts) to the shared rollups and
        the Prometheus metrics."""
        hist, counters = self.service.stats.drain()
        self.stats_store.flush(time.time(), hist, counters)
        if self.metrics is not None:
            self.metrics.flush(self.r, self.stats_store.keys)

    def stats(self, since_s: float, until_s: float | None = None):
        return self.stats_store.read(since_s, until_s)

    def stats_series(self, since_s: float, until_s: float | None = None):
        """Per-interval rollups: ``[(interval start, histograms, counters)]``, oldest first."""
        return self.stats_store.series(since_s, until_s)

    def workers(self, within_s: float = 15.0) -> list[str]:
        cutoff = int((time.time() - within_s) * 1000)
        return list(self.r.zrangebyscore(self.repo.keys.workers, cutoff, "+inf"))


def _trailing_flush(ref: weakref.ReferenceType[EngineClient], period: float) -> None:
    """A client's background flush (it has no heartbeat): every ``period`` while the client lives."""
    while True:
        time.sleep(period)
        client = ref()
        if client is None:
            return
        if time.monotonic() - client._stats_flushed >= period:
            client._stats_flushed = time.monotonic()
            try:
                client.flush_stats()
            except Exception:  # Redis away: what was measured is dropped, the client goes on
                pass
        del client


def load_definitions(path: str | Path) -> list[WorkflowDefinition]:
    """Definitions from a YAML/JSON file (one, a list, or ``definitions: [...]``), a Python file
    (every WorkflowDefinition at module level), or every such file in a directory."""
    p = Path(path)
    if not p.exists():
        raise EngineError(f"no such file or directory: {p}")
    if p.is_dir():
        out: list[WorkflowDefinition] = []
        for child in sorted(p.iterdir()):
            if child.suffix in (".yaml", ".yml", ".json") and not child.name.startswith("_"):
                out.extend(load_definitions(child))
            elif child.suffix == ".py" and not child.name.startswith("_"):
                # In a directory, Python files may hold handlers only; named explicitly they must define.
                out.extend(_python_definitions(child, required=False))
        return out
    if p.suffix == ".py":
        return _python_definitions(p)
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError([f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}"])
    if isinstance(data, Mapping) and "definitions" in data and "steps" not in data:
        data = data["definitions"]
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        try:
            out.append(parse_definition(item))
        except DefinitionError as exc:
            raise DefinitionError([f"{p}: {q}" for q in exc.problems], exc.name)
    return out


def _python_definitions(p: Path, required: bool = True) -> list[WorkflowDefinition]:
    spec = importlib.util.spec_from_file_location(f"wes_defs_{uuid.uuid4().hex[:8]}", p)
    if spec is None or spec.loader is None:
        raise EngineError(f"cannot load Python file {p}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise DefinitionError([f"{p}: importing it failed: {type(exc).__name__}: {exc}"])
    found = [v for v in vars(module).values() if isinstance(v, WorkflowDefinition)]
    if not found and required:
        raise DefinitionError([f"{p}: defines no WorkflowDefinition at module level"])
    return found
