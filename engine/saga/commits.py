"""A held saga's commits: what is buffered goes to Redis in one Lua call, many sagas' calls in flight on
one connection; a concurrent operator's change is merged back; STRICT sagas take their locks and fsync.

One commit in ``PROBE_EVERY`` is sent alone on a blocking connection and timed for the persistence SLA
(the event loop waits for that one round trip): with many sagas on one loop, the time until a reply is
read on the shared connection would include the worker's work on other sagas, which is not persistence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from engine.domain import events as ev
from engine.domain.status import ConsistencyLevel
from engine.errors import ConcurrencyConflict, IllegalTransition
from engine.persistence.workflow_repository import CommitRequest, CommitResult, StoredWorkflow, WorkflowRepository
from engine.saga.execution import SagaExecution
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

PROBE_EVERY = 16
"""One commit in this many is sent alone and timed, at most one every ``PROBE_GAP_S``."""
PROBE_GAP_S = 0.05
"""Each probe holds the event loop for one round trip: a few dozen a second measure enough."""
SNAPSHOT_EVERY = 16
"""Most events a reader replays on top of the stored snapshot."""
_RESULTS = (ev.StepExecuted, ev.StepFailed, ev.StepCompensated, ev.CompensationFailed)


class SagaCommits:
    def __init__(
        self,
        repo: WorkflowRepository,
        stats: StatsRecorder,
        request_dispatch: Callable[[], None],
        fsync: Callable[[], None] | None,
        clock: Callable[[], float],
        lock_retry_seconds: float,
    ):
        self.repo = repo
        self.stats = stats
        self.request_dispatch = request_dispatch
        self.fsync = fsync
        self.clock = clock
        self.lock_retry_seconds = lock_retry_seconds
        self._sent = 0
        self._next_probe = 0.0

    async def flush(self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none") -> bool:
        """Commit buffered events. False when a concurrent control action won: the instance was
        reloaded with this worker's step results re-applied, and the caller must decide again."""
        return await self.commit(ex, sched=sched, at_ms=at_ms, lock=lock) is not None

    async def commit(
        self, ex: SagaExecution, sched: str = "keep", at_ms: int = 0, lock: str = "none"
    ) -> CommitResult | None:
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
            res = await self._send(request)
        except ConcurrencyConflict:
            self._reload_after_conflict(ex)
            return None
        if res.lock_busy:
            return res
        if self.fsync is not None and ex.inst.consistency is ConsistencyLevel.STRICT:
            await asyncio.get_running_loop().run_in_executor(None, self.fsync)
        ex.version = res.version
        if write:
            ex.snapshot_version = res.version
        ex.old_status = ex.inst.status
        ex.buffered.clear()
        if res.enqueue:
            self.request_dispatch()
        return res

    async def _send(self, request: CommitRequest) -> CommitResult:
        self._sent += 1
        if self._sent % PROBE_EVERY == 0 and (now := time.monotonic()) >= self._next_probe:
            self._next_probe = now + PROBE_GAP_S
            result, elapsed = self.repo.commit_timed(request)
            self.stats.observe("state_persistence", elapsed)
            if request.events:
                # The events are appended to the workflow's stream and the global feed in this same
                # atomic commit: its round trip is their publishing time.
                self.stats.observe("event_publish", elapsed)
        else:
            result = await self.repo.commit_async(request)
        if isinstance(result, Exception):
            raise result
        return result

    async def acquire_locks(self, ex: SagaExecution, now: float) -> bool:
        """STRICT: take every declared resource lock with the start; wait and retry if one is held.

        False when the saga was handed back to wait for a lock."""
        res = await self.commit(ex, lock="acquire")
        if res is None or not res.lock_busy:
            return True  # started (or a control action won and the saga is decided again)
        self._reset(ex, self.repo.load(ex.inst.workflow_id))
        if not ex.inst.waiting_for_lock:
            ex.record(ev.ResourceLockWaiting(ex.inst.workflow_id, now, list(ex.inst.resources), res.lock_holder or ""))
        # Handed back until the retry; if a control action won meanwhile, decide again instead.
        return not await self.flush(ex, sched="set", at_ms=int((now + self.lock_retry_seconds) * 1000))

    def _reload_after_conflict(self, ex: SagaExecution) -> None:
        results = [e for e in ex.buffered if isinstance(e, _RESULTS)]
        self._reset(ex, self.repo.load(ex.inst.workflow_id))
        for e in results:
            try:
                ex.record(e)
            except (IllegalTransition, KeyError):
                log.info("dropping %s of %s after a concurrent change", e.TYPE, ex.inst.workflow_id)

    @staticmethod
    def _reset(ex: SagaExecution, stored: StoredWorkflow) -> None:
        ex.inst = stored.instance
        ex.version = stored.version
        ex.snapshot_version = stored.snapshot_version
        ex.old_status = stored.instance.status
        ex.buffered.clear()
        # A control action never takes the lease, so the fence is unchanged.
