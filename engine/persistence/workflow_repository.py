"""WorkflowInstanceRepository on Redis: snapshot hash + event stream per workflow, global indexes.

Every write is one Lua script: check version (and fence for workers), append events to the
workflow's stream and the global feed, store the snapshot, move indexes, schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from engine.domain.events import DomainEvent
from engine.domain.instance import WorkflowInstance
from engine.domain.status import WorkflowStatus
from engine.errors import ConcurrencyConflict, LeaseLost, WorkflowNotFound
from engine.persistence import scripts
from engine.persistence.codec import decode_event, decode_instance, dumps, encode_instance, loads
from engine.persistence.keys import Keys
from engine.settings import EngineSettings

FLAG_TTL_MS = 5000


@dataclass(frozen=True)
class CreateResult:
    workflow_id: str
    created: bool
    enqueue: bool


@dataclass(frozen=True)
class CommitResult:
    version: int
    enqueue: bool = False
    lock_holder: str | None = None
    lock_key: str | None = None

    @property
    def lock_busy(self) -> bool:
        return self.lock_holder is not None


@dataclass(frozen=True)
class StoredWorkflow:
    instance: WorkflowInstance
    version: int
    fence: int
    owner: str | None
    lease_until_ms: int


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class WorkflowRepository:
    def __init__(self, client: redis.Redis, settings: EngineSettings):
        self.r = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._create = client.register_script(scripts.CREATE)
        self._commit = client.register_script(scripts.COMMIT)

    # ------------------------------------------------------------------ writes
    def create(
        self,
        inst: WorkflowInstance,
        now_ms: int,
        idempotency_key: str | None = None,
        schedule: bool = True,
    ) -> CreateResult:
        (created,) = inst.take_pending()
        k = self.keys
        wid = inst.workflow_id
        res = self._create(
            keys=[
                k.state(wid),
                k.events(wid),
                k.feed,
                k.sched,
                k.by_status(WorkflowStatus.CREATED.value),
                k.all_workflows,
                k.by_definition(inst.workflow_type),
                k.by_correlation(inst.correlation_id),
                k.idempotency(idempotency_key or "-"),
                k.idle,
                k.wake,
                k.queued,
            ],
            args=[
                wid,
                encode_instance(inst),
                dumps(created.to_dict()),
                created.TYPE,
                int(inst.created_at * 1000),
                now_ms,
                self.settings.feed_maxlen,
                1 if idempotency_key else 0,
                self.settings.idempotency_ttl_seconds,
                inst.workflow_type,
                inst.correlation_id,
                FLAG_TTL_MS,
                inst.version,
                1 if schedule else 0,
            ],
        )
        code, found_id, enqueue = int(res[0]), res[1], int(res[2])
        if code == -1:
            raise ConcurrencyConflict(f"workflow id {wid} already exists")
        return CreateResult(workflow_id=found_id, created=code == 1, enqueue=bool(enqueue))

    def commit(
        self,
        inst: WorkflowInstance,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
        old_status: WorkflowStatus,
        now_ms: int,
        fence: int | None = None,
        sched: str = "keep",
        sched_at_ms: int = 0,
        lock: str = "none",
    ) -> CommitResult:
        """Append ``events`` (already applied to ``inst``) if the stored version is still ``expected_version``.

        With ``fence`` the caller is the worker holding the lease; without, a control action.
        """
        k = self.keys
        wid = inst.workflow_id
        keys = [
            k.state(wid),
            k.events(wid),
            k.feed,
            k.sched,
            k.by_status(old_status.value),
            k.by_status(inst.status.value),
            k.attention,
            k.idle,
            k.wake,
            k.queued,
        ]
        if lock != "none":
            keys.extend(k.lock(res) for res in inst.resources)
        args: list[Any] = [
            wid,
            "run" if fence is not None else "ctl",
            fence if fence is not None else "",
            expected_version,
            encode_instance(inst),
            inst.status.value,
            old_status.value,
            sched,
            sched_at_ms,
            now_ms,
            self.settings.feed_maxlen,
            int(inst.created_at * 1000),
            "1" if inst.requires_attention else "0",
            lock,
            FLAG_TTL_MS,
            len(events),
        ]
        for e in events:
            args.append(e.TYPE)
            args.append(dumps(e.to_dict()))
        res = self._commit(keys=keys, args=args)
        code = int(res[0])
        if code == 1:
            return CommitResult(version=expected_version + len(events), enqueue=bool(int(res[1])))
        if code == -1:
            raise ConcurrencyConflict(f"workflow {wid} changed (stored version {res[1]}, expected {expected_version})")
        if code == -2:
            raise LeaseLost(f"workflow {wid} is owned by another worker now (fence {res[1]}, ours {fence})")
        if code == -3:
            raise WorkflowNotFound(wid)
        return CommitResult(version=expected_version, lock_holder=res[1], lock_key=res[2])

    # ------------------------------------------------------------------ reads
    def load(self, wid: str) -> StoredWorkflow:
        raw = self.r.hmget(self.keys.state(wid), "snap", "v", "fence", "owner", "lease_until")
        if raw[0] is None:
            raise WorkflowNotFound(wid)
        inst = decode_instance(raw[0])
        return StoredWorkflow(inst, int(raw[1]), int(raw[2] or 0), raw[3], int(raw[4] or 0))

    def find_by_id(self, wid: str) -> WorkflowInstance | None:
        try:
            return self.load(wid).instance
        except WorkflowNotFound:
            return None

    def snapshot(self, wid: str) -> dict[str, Any]:
        raw = self.r.hget(self.keys.state(wid), "snap")
        if raw is None:
            raise WorkflowNotFound(wid)
        return loads(raw)

    def snapshots(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for wid in ids:
            pipe.hget(self.keys.state(wid), "snap")
        return [loads(raw) for raw in pipe.execute() if raw is not None]

    def status_of(self, wid: str) -> WorkflowStatus:
        raw = self.r.hget(self.keys.state(wid), "status")
        if raw is None:
            raise WorkflowNotFound(wid)
        return WorkflowStatus(raw)

    def find_by_status(self, status: WorkflowStatus, limit: int = 100) -> list[WorkflowInstance]:
        ids = self.r.zrevrange(self.keys.by_status(status.value), 0, limit - 1)
        return [WorkflowInstance.from_dict(s) for s in self.snapshots(ids)]

    def find_by_correlation_id(self, correlation_id: str, limit: int = 100) -> list[WorkflowInstance]:
        ids = self.r.zrevrange(self.keys.by_correlation(correlation_id), 0, limit - 1)
        return [WorkflowInstance.from_dict(s) for s in self.snapshots(ids)]

    def count_by_status(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for status in WorkflowStatus:
            pipe.zcard(self.keys.by_status(status.value))
        return {s.value: int(n) for s, n in zip(WorkflowStatus, pipe.execute(), strict=True)}

    def list_ids(
        self,
        *,
        status: WorkflowStatus | None = None,
        definition: str | None = None,
        correlation_id: str | None = None,
        requires_attention: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[str], str | None]:
        """Newest first from one index; ``cursor`` is ``<created ms>:<id>`` of the last item seen."""
        k = self.keys
        if requires_attention:
            index = k.attention
        elif correlation_id is not None:
            index = k.by_correlation(correlation_id)
        elif status is not None:
            index = k.by_status(status.value)
        elif definition is not None:
            index = k.by_definition(definition)
        else:
            index = k.all_workflows
        filters = {"status": status, "definition": definition, "correlation_id": correlation_id}
        max_score: str = "+inf"
        after_id: str | None = None
        if cursor:
            score, _, after_id = cursor.partition(":")
            max_score = score
        out: list[str] = []
        last_score: float | None = None
        fetch = max(limit * 2, 50)
        offset = 0
        while len(out) < limit:
            rows = self.r.zrevrangebyscore(index, max_score, "-inf", start=offset, num=fetch, withscores=True)
            if not rows:
                break
            offset += len(rows)
            candidates = []
            for wid, score in rows:
                if after_id is not None and str(int(score)) == max_score and wid >= after_id:
                    continue
                candidates.append((wid, score))
            matched = self._filter(candidates, filters, index)
            for wid, score in matched:
                out.append(wid)
                last_score = score
                if len(out) == limit:
                    break
            if len(rows) < fetch:
                break
        next_cursor = f"{int(last_score)}:{out[-1]}" if out and len(out) == limit and last_score is not None else None
        return out, next_cursor

    def _filter(self, rows: list[tuple[str, float]], filters: dict, index: str) -> list[tuple[str, float]]:
        checks = {name: value for name, value in filters.items() if value is not None}
        if not checks or not rows:
            return rows
        pipe = self.r.pipeline(transaction=False)
        for wid, _ in rows:
            pipe.hmget(self.keys.state(wid), "status", "type", "corr")
        out = []
        for (wid, score), (status, wtype, corr) in zip(rows, pipe.execute(), strict=True):
            if status is None:
                continue
            if "status" in checks and status != checks["status"].value:
                continue
            if "definition" in checks and wtype != checks["definition"]:
                continue
            if "correlation_id" in checks and corr != checks["correlation_id"]:
                continue
            out.append((wid, score))
        return out

    def events(self, wid: str, after: str = "-", count: int | None = None) -> list[tuple[str, int, DomainEvent]]:
        """(stream entry id, version, event) in order, after the entry id ``after``."""
        rows = self.r.xrange(self.keys.events(wid), min=after if after == "-" else f"({after}", count=count)
        if not rows and not self.r.exists(self.keys.state(wid)):
            raise WorkflowNotFound(wid)
        return [(entry_id, int(fields["v"]), decode_event(fields["d"])) for entry_id, fields in rows]

    def event_versions(self, wid: str) -> list[int]:
        return [int(fields["v"]) for _, fields in self.r.xrange(self.keys.events(wid))]

    def replay(self, wid: str) -> WorkflowInstance:
        return WorkflowInstance.replay(e for _, _, e in self.events(wid))

    def exists(self, wid: str) -> bool:
        return bool(self.r.exists(self.keys.state(wid)))
