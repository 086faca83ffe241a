"""The schedule: which workflows are due, who holds them, and waking dispatchers.

``sched`` scores every live workflow a worker has seen with the time a worker should next look at it:
now for runnable work, a retry's due time, the deadline of a paused saga, or the lease expiry while a
worker holds it. A worker that dies simply stops renewing, and the workflow becomes due again. Fresh
starts wait in ``ready`` (by creation time) until a claim moves them to ``sched``; a claim serves what
is due in ``sched`` first, so recovered sagas, retries and timers never queue behind a backlog of
fresh starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from engine.persistence import scripts
from engine.persistence.aio import async_redis_for
from engine.persistence.codec import decode_instance
from engine.persistence.fastpath import runner_for
from engine.persistence.keys import Keys
from engine.persistence.workflow_repository import FLAG_TTL_MS, StoredWorkflow
from engine.settings import EngineSettings


@dataclass(frozen=True)
class Claim:
    ids: list[str]
    more: bool
    """More is due or ready than this claim took."""
    next_due_ms: int | None
    """With no ids: when the next workflow falls due (None: nothing scheduled)."""
    due_ms: list[int] = field(default_factory=list)
    """Aligned with ``ids``: when each was due (a fresh start: its creation), so that the claim time
    minus it is the dispatch lag."""


class Dispatch:
    def __init__(self, client: redis.Redis, settings: EngineSettings):
        self.r = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._claim = client.register_script(scripts.CLAIM)
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._renew = client.register_script(scripts.RENEW)
        self._release = client.register_script(scripts.RELEASE)
        self._exit = client.register_script(scripts.EXIT)
        self._tick = client.register_script(scripts.TICK)
        self._fast = runner_for(client)
        self._aio = async_redis_for(client)

    # Each hot-path call is built once and sent either way: blocking (``claim``) or on the worker's
    # event loop (``claim_async``), so the sync and asyncio paths cannot drift apart.
    # ``idle_until_ms`` > 0: the caller has free capacity and stays registered as idle until then (a
    # start wakes it), whether or not the claim found work; 0: it is at capacity.
    def claim(self, dispatcher: str, now_ms: int, lease_until_ms: int, limit: int, idle_until_ms: int) -> Claim:
        return self._claim_result(
            self._fast.run(*self._claim_call(dispatcher, now_ms, lease_until_ms, limit, idle_until_ms))
        )

    async def claim_async(
        self, dispatcher: str, now_ms: int, lease_until_ms: int, limit: int, idle_until_ms: int
    ) -> Claim:
        call = self._claim_call(dispatcher, now_ms, lease_until_ms, limit, idle_until_ms)
        return self._claim_result(await self._aio.evalsha_checked(*call))

    def _claim_call(
        self, dispatcher: str, now_ms: int, lease_until_ms: int, limit: int, idle_until_ms: int
    ) -> tuple[Script, list[str], list[Any]]:
        return (
            self._claim,
            [self.keys.sched, self.keys.idle, self.keys.ready],
            [now_ms, lease_until_ms, limit, dispatcher, idle_until_ms],
        )

    @staticmethod
    def _claim_result(res: Any) -> Claim:
        n = int(res[0])
        if n == 0:
            nxt = res[1]
            return Claim([], False, int(float(nxt)) if nxt not in (None, "") else None)
        return Claim(list(res[2::2]), bool(int(res[1])), None, [int(float(due)) for due in res[3::2]])

    def acquire(self, ids: Sequence[str], owner: str, lease_until_ms: int) -> dict[str, StoredWorkflow]:
        """Take the lease of claimed workflows (one pipelined round trip); bumps each fence."""
        calls = self._acquire_calls(ids, owner, lease_until_ms)
        return self._acquired(ids, owner, lease_until_ms, self._fast.run_many(calls))

    async def acquire_async(self, ids: Sequence[str], owner: str, lease_until_ms: int) -> dict[str, StoredWorkflow]:
        calls = self._acquire_calls(ids, owner, lease_until_ms)
        return self._acquired(ids, owner, lease_until_ms, await self._aio.evalsha_many(calls))

    def _acquire_calls(
        self, ids: Sequence[str], owner: str, lease_until_ms: int
    ) -> list[tuple[Script, list[str], list[Any]]]:
        k = self.keys
        return [(self._acquire, [k.state(wid), k.sched, k.events(wid)], [wid, owner, lease_until_ms]) for wid in ids]

    @staticmethod
    def _acquired(
        ids: Sequence[str], owner: str, lease_until_ms: int, replies: Sequence[Any]
    ) -> dict[str, StoredWorkflow]:
        out = {}
        for wid, res in zip(ids, replies, strict=True):
            if int(res[0]) == 0:
                continue
            inst = decode_instance(res[2], res[4:])
            out[wid] = StoredWorkflow(inst, int(res[1]), int(res[0]), owner, lease_until_ms, int(res[3]))
        return out

    def renew(self, leases: dict[str, int], lease_until_ms: int) -> set[str]:
        """Extend held leases; returns the ids whose lease is gone (fenced out or released)."""
        if not leases:
            return set()
        ids = list(leases)
        k = self.keys
        # One round trip on the calling thread's own connection, packed by hiredis: a busy worker holds
        # hundreds of leases, and redis-py's pipeline costs several times more per call.
        replies = self._fast.run_many(
            [(self._renew, [k.state(wid), k.sched], [wid, leases[wid], lease_until_ms]) for wid in ids]
        )
        return {wid for wid, ok in zip(ids, replies, strict=True) if not int(ok)}

    def release(self, wid: str, fence: int, at_ms: int) -> bool:
        return bool(int(self._release(keys=[self.keys.state(wid), self.keys.sched], args=[wid, fence, at_ms])))

    def may_exit(self, dispatcher: str, now_ms: int) -> bool:
        """Atomically deregister an idle dispatcher unless work or a wake token arrived."""
        k = self.keys
        res = self._exit(keys=[k.idle, k.wake, k.sched, k.ready], args=[dispatcher, now_ms])
        return not int(res)

    def wait_for_wake(self, timeout_s: float) -> bool:
        if timeout_s <= 0:
            return False
        # BLPOP takes whole or fractional seconds; keep it above 1 ms.
        return self.r.blpop([self.keys.wake], timeout=max(timeout_s, 0.001)) is not None

    def tick(self, now_ms: int) -> bool:
        """Safety net: True when a dispatch job should be enqueued (work due, nobody idle, none queued)."""
        k = self.keys
        res = self._tick(keys=[k.sched, k.idle, k.wake, k.queued, k.ready], args=[now_ms, FLAG_TTL_MS])
        return bool(int(res))

    def clear_queued_flag(self) -> None:
        self.r.delete(self.keys.queued)

    def request_dispatch_flag(self) -> bool:
        """True if the caller should enqueue a dispatch job (none queued yet)."""
        return bool(self.r.set(self.keys.queued, "1", nx=True, px=FLAG_TTL_MS))
