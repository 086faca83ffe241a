"""WorkflowInstanceRepository on Redis: snapshot hash + event stream per workflow, global indexes.

Every write is one Lua script: check version (and fence for workers), append events to the
workflow's stream and the global feed, store the snapshot, move indexes, schedule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from engine.domain.events import DomainEvent, WorkflowCreated
from engine.domain.instance import WorkflowInstance
from engine.domain.status import WorkflowStatus
from engine.errors import ConcurrencyConflict, EngineError, LeaseLost, WorkflowNotFound
from engine.persistence import scripts
from engine.persistence.aio import async_redis_for
from engine.persistence.codec import decode_instance, encode_event, encode_instance, loads
from engine.persistence.event_stream import decode_entry
from engine.persistence.fastpath import runner_for
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


@dataclass(slots=True)
class CommitRequest:
    """One workflow's commit: its events (already applied to ``inst``) and how to reschedule it."""

    inst: WorkflowInstance
    events: list[DomainEvent]
    expected_version: int
    old_status: WorkflowStatus
    now_ms: int
    fence: int | None = None
    sched: str = "keep"
    sched_at_ms: int = 0
    lock: str = "none"
    write_snapshot: bool = True


@dataclass(frozen=True)
class StoredWorkflow:
    instance: WorkflowInstance
    version: int
    fence: int
    owner: str | None
    lease_until_ms: int
    snapshot_version: int = 0
    """Version of the last written snapshot (events after it are replayed on read)."""


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
        self._read_script = client.register_script(scripts.READ)
        self._fast = runner_for(client)
        self._aio = async_redis_for(client)

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
        res = self._fast.run(
            self._create,
            [
                k.state(wid),
                k.events(wid),
                k.feed,
                k.ready,
                k.by_status(WorkflowStatus.CREATED.value),
                k.all_workflows,
                k.by_definition(inst.workflow_type),
                k.by_correlation(inst.correlation_id),
                k.idempotency(idempotency_key or "-"),
                k.idle,
                k.wake,
                k.queued,
            ],
            [
                wid,
                encode_instance(inst),
                encode_event(created),
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

    def save(self, inst: WorkflowInstance, now_ms: int, idempotency_key: str | None = None) -> WorkflowInstance:
        """The seed's ``save``: persist the events recorded on ``inst`` since it was loaded (or
        created), if nobody else changed it meanwhile (else ConcurrencyConflict)."""
        pending = list(inst.pending)
        if not pending:
            return inst
        if isinstance(pending[0], WorkflowCreated):
            if len(pending) > 1:
                raise ValueError("save a new workflow with its WorkflowCreated event alone, then the rest")
            self.create(inst, now_ms, idempotency_key=idempotency_key)
            return inst
        events = inst.take_pending()
        old_status = self.status_of(inst.workflow_id)
        self.commit(
            inst,
            events,
            expected_version=inst.version - len(events),
            old_status=old_status,
            now_ms=now_ms,
            sched="del" if inst.is_terminal else "wake",
        )
        return inst

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
        write_snapshot: bool = True,
    ) -> CommitResult:
        """Append ``events`` (already applied to ``inst``) if the stored version is still ``expected_version``.

        With ``fence`` the caller is the worker holding the lease; without, a control action.
        """
        request = CommitRequest(
            inst, list(events), expected_version, old_status, now_ms, fence, sched, sched_at_ms, lock, write_snapshot
        )
        reply = self._fast.run(self._commit, *self._commit_call(request))
        result = self._commit_result(request, reply)
        if isinstance(result, Exception):
            raise result
        return result

    async def commit_async(self, request: CommitRequest) -> CommitResult | EngineError:
        """A worker's commit on its event loop: many sagas' commits share one connection, each waiting
        only for its own reply. A per-saga outcome (conflict, lost lease) is returned, not raised."""
        reply = await self._aio.evalsha(self._commit, *self._commit_call(request))
        return self._commit_result(request, reply)

    def commit_timed(self, request: CommitRequest) -> tuple[CommitResult | EngineError, float]:
        """A commit sent alone on a blocking connection of the calling thread, and its round trip (the
        persistence SLA's probe: encoding is done before the clock starts)."""
        call = self._commit_call(request)
        started = time.perf_counter()
        reply = self._fast.run(self._commit, *call)
        return self._commit_result(request, reply), time.perf_counter() - started

    def close_async(self) -> None:
        """Close the asyncio connection (before its event loop ends)."""
        self._aio.close()

    def _commit_call(self, r: CommitRequest) -> tuple[list[str], list[Any]]:
        k = self.keys
        inst = r.inst
        wid = inst.workflow_id
        keys = [
            k.state(wid),
            k.events(wid),
            k.feed,
            k.sched,
            k.by_status(r.old_status),
            k.by_status(inst.status),
            k.attention,
            k.idle,
            k.wake,
            k.queued,
            k.ready,
        ]
        if r.lock != "none":
            keys.extend(k.lock(res) for res in inst.resources)
        args: list[Any] = [
            wid,
            "run" if r.fence is not None else "ctl",
            r.fence if r.fence is not None else "",
            r.expected_version,
            encode_instance(inst) if r.write_snapshot else "",
            inst.status,
            r.old_status,
            r.sched,
            r.sched_at_ms,
            r.now_ms,
            self.settings.feed_maxlen,
            int(inst.created_at * 1000),
            # The attention index changes only with the status (or an operator's retry): skip it otherwise.
            "1" if inst.requires_attention else ("0" if inst.status != r.old_status else ""),
            r.lock,
            FLAG_TTL_MS,
            len(r.events),
        ]
        for e in r.events:
            args.append(e.TYPE)
            args.append(encode_event(e))
        return keys, args

    @staticmethod
    def _commit_result(r: CommitRequest, reply: Any) -> CommitResult | EngineError:
        if isinstance(reply, Exception):
            raise reply  # a Redis error (script bug, OOM): not a per-saga outcome
        wid = r.inst.workflow_id
        code = int(reply[0])
        if code == 1:
            return CommitResult(version=r.expected_version + len(r.events), enqueue=bool(int(reply[1])))
        if code == -1:
            return ConcurrencyConflict(
                f"workflow {wid} changed (stored version {reply[1]}, expected {r.expected_version})"
            )
        if code == -2:
            return LeaseLost(f"workflow {wid} is owned by another worker now (fence {reply[1]}, ours {r.fence})")
        if code == -3:
            return WorkflowNotFound(wid)
        return CommitResult(version=r.expected_version, lock_holder=reply[1], lock_key=reply[2])

    # ------------------------------------------------------------------ reads
    def load(self, wid: str) -> StoredWorkflow:
        """The workflow as stored: its last snapshot with the events committed after it applied."""
        (stored,) = self._read([wid])
        if stored is None:
            raise WorkflowNotFound(wid)
        return stored

    def _read(self, ids: Sequence[str]) -> list[StoredWorkflow | None]:
        replies = self._fast.run_many([(self._read_script, [self.keys.state(w), self.keys.events(w)], []) for w in ids])
        out: list[StoredWorkflow | None] = []
        for reply in replies:
            if not reply:
                out.append(None)
                continue
            inst = decode_instance(reply[1], reply[6:])
            out.append(StoredWorkflow(inst, int(reply[0]), int(reply[3]), reply[4] or None, int(reply[5]),
                                      int(reply[2])))  # fmt: skip
        return out

    def find_by_id(self, wid: str) -> WorkflowInstance | None:
        try:
            return self.load(wid).instance
        except WorkflowNotFound:
            return None

    def snapshot(self, wid: str) -> dict[str, Any]:
        return self.load(wid).instance.to_dict()

    def snapshots(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return [s.instance.to_dict() for s in self._read(ids) if s is not None]

    def summaries(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """What a list shows, without reading snapshots: one round trip for the page."""
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for wid in ids:
            pipe.hmget(self.keys.state(wid), "status", "type", "created", "updated", "corr")
        pipe.zmscore(self.keys.attention, list(ids))
        *rows, attention_scores = pipe.execute()
        out = []
        for wid, (status, wtype, created, updated, corr), attention in zip(ids, rows, attention_scores, strict=True):
            if status is None:
                continue
            out.append(
                {
                    "workflow_id": wid,
                    "workflow_type": wtype,
                    "status": status,
                    "correlation_id": corr or "",
                    "created_at": int(created or 0) / 1000.0,
                    "updated_at": int(updated or 0) / 1000.0,
                    "requires_attention": attention is not None,
                }
            )
        return out

    def stored_snapshot(self, wid: str) -> tuple[dict[str, Any], int]:
        """The last written snapshot as it is in Redis, and the version it reflects."""
        raw, sv, v = self.r.hmget(self.keys.state(wid), "snap", "sv", "v")
        if raw is None:
            raise WorkflowNotFound(wid)
        return loads(raw), int(sv or v)

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

    def events(self, wid: str, after: str = "-", count: int | None = None) -> list[tuple[str, int, DomainEvent]]:
        """(stream entry id, version, event) in order, after the entry id ``after``."""
        rows = self.r.xrange(self.keys.events(wid), min=after if after == "-" else f"({after}", count=count)
        if not rows and not self.r.exists(self.keys.state(wid)):
            raise WorkflowNotFound(wid)
        entries = (decode_entry(entry_id, fields, wid) for entry_id, fields in rows)
        return [(e.id, e.version, e.event()) for e in entries]

    def event_versions(self, wid: str) -> list[int]:
        return [int(fields["v"]) for _, fields in self.r.xrange(self.keys.events(wid))]

    def replay(self, wid: str) -> WorkflowInstance:
        return WorkflowInstance.replay(e for _, _, e in self.events(wid))

    def exists(self, wid: str) -> bool:
        return bool(self.r.exists(self.keys.state(wid)))
