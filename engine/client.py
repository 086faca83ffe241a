"""EngineClient: the facade every caller outside the workers uses (CLI, API, tests).

It implements the seed's WorkflowExecutionService (``engine.ports.WorkflowExecutionService``:
start, pause, resume, cancel, status) plus definitions, queries and the operator's retry of failed
compensations.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.definition_files import load_definitions
from engine.domain import commands
from engine.domain.coordinator import SagaCoordinator
from engine.domain.definition import WorkflowDefinition, parse_definition
from engine.domain.instance import WorkflowInstance
from engine.domain.status import ConsistencyLevel, WorkflowStatus, is_terminal
from engine.errors import DefinitionError
from engine.persistence.workflow_repository import Page
from engine.saga.consistency import ConsistencyReport, validate_saga_consistency
from engine.settings import EngineSettings
from engine.wiring import Engine


class EngineClient:
    def __init__(self, settings: EngineSettings | None = None, url: str | None = None):
        self.settings = settings or EngineSettings()
        self.engine = Engine(self.settings, url=url)
        stores = self.engine.stores
        self.url = stores.url
        self.r = stores.client
        """The raw connection, for tests and tools only: the engine itself goes through its stores."""
        self.repo = stores.workflows
        self.definitions = stores.definitions
        self.services = stores.services
        self.stats_store = stores.stats
        self.resolver = self.engine.resolver
        self.port = self.engine.port
        self._stats_flushed = time.monotonic()
        self._flusher: threading.Thread | None = None

    def ping(self) -> bool:
        return self.engine.stores.ping()

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
        res = self.engine.starter.start(
            definition,
            input,
            correlation_id=correlation_id,
            consistency=consistency,
            idempotency_key=idempotency_key,
            headers=headers,
            principal=principal,
        )
        self._maybe_flush_stats()
        return {
            "workflow_id": res.workflow_id,
            "status": WorkflowStatus.CREATED.value if res.created else self.repo.status_of(res.workflow_id).value,
            "created": res.created,
            "definition": definition.definition_id,
        }

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
        ids, nxt = self.engine.stores.index.list_ids(
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
        return self.engine.stores.index.count_by_status()

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
        return validate_saga_consistency(self.repo, wid)

    # ================================================================== operator controls
    def pause(self, wid: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        return self.engine.controls.apply(wid, lambda inst, now: commands.pause(inst, now, by, reason))

    def resume(self, wid: str, *, by: str = "") -> dict[str, Any]:
        return self.engine.controls.apply(wid, lambda inst, now: commands.resume(inst, now, by))

    def cancel(self, wid: str, *, by: str = "", reason: str = "cancelled") -> dict[str, Any]:
        floor = self.settings.compensation_floor
        return self.engine.controls.apply(wid, lambda inst, now: commands.cancel(inst, now, by, reason, floor))

    def retry_compensation(self, wid: str, steps: Iterable[str] | None = None, *, by: str = "") -> dict[str, Any]:
        floor = self.settings.compensation_floor
        return self.engine.controls.apply(
            wid, lambda inst, now: commands.retry_compensation(inst, now, steps, by, floor)
        )

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
        self.engine.flush_stats()

    def stats(self, since_s: float, until_s: float | None = None):
        return self.stats_store.read(since_s, until_s)

    def stats_series(self, since_s: float, until_s: float | None = None):
        """Per-interval rollups: ``[(interval start, histograms, counters)]``, oldest first."""
        return self.stats_store.series(since_s, until_s)

    def workers(self, within_s: float = 15.0) -> list[str]:
        return self.engine.stores.workers.alive(int((time.time() - within_s) * 1000))


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
