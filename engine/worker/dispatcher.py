"""One dispatch job on the worker's event loop: claim due sagas while there is room, run each as a task.

The worker keeps up to ``max_in_flight`` sagas running at once (those waiting for a service's bulkhead
slot do not count): while some wait for a service or a commit, it claims more. When nothing is due it
lingers for new work (a wake token from a start, or the next timer) before giving its process back to
RQ; a job also ends after ``slice_seconds``, its sagas handed back at their next step, and asks for the
next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from engine.persistence.dispatch import Claim, Dispatch
from engine.persistence.wake_listener import WakeListener
from engine.persistence.workflow_repository import StoredWorkflow
from engine.saga.service import SagaCoordinatorService
from engine.settings import EngineSettings
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

LAG_PROBE_S = 0.01
"""How often the event loop's lag (how late a timer fires) is sampled."""
SATURATED_LAG_S = 0.02
"""Past this smoothed lag the loop has more ready work than it gets through: claiming more sagas would
only queue them inside this worker (and their commits inside Redis), so it claims no more until the
lag falls; what is due stays in the schedule, where an idle worker takes it."""
MIN_RUNNING = 4
"""A saturated worker still keeps this many sagas running."""
MAX_WAIT_S = 0.25
"""Longest wait between looks at the schedule: a warm shutdown or a due timer is noticed this fast."""
AVAILABLE_FOR_MS = 1500
"""How long a claim leaves this dispatcher registered as having room (to be woken by a start)."""
RETRY_AFTER_FAILURE_MS = 5000


def ms() -> int:
    return int(time.time() * 1000)


class Dispatcher:
    def __init__(
        self,
        settings: EngineSettings,
        dispatch: Dispatch,
        wakes: WakeListener,
        coordinator: SagaCoordinatorService,
        stats: StatsRecorder,
        name: str,
        draining: threading.Event,
        request_dispatch: Callable[[], None],
    ):
        self.settings = settings
        self.dispatch = dispatch
        self.wakes = wakes
        self.coordinator = coordinator
        self.stats = stats
        self.name = name
        self.draining = draining
        self.request_dispatch = request_dispatch
        self.yielding = False
        """The job's slice is over: sagas hand back at their next step (read by the coordinator)."""
        self.active: set[asyncio.Task] = set()
        self.lag = 0.0
        """Smoothed lateness of the event loop, seconds: its measure of CPU saturation."""
        self._ended = asyncio.Event()
        self._wake: asyncio.Future | None = None
        self._lag_timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> int:
        """Sagas counted against ``max_in_flight``: not those parked on a bulkhead."""
        return len(self.active) - self.coordinator.waiting_for_slots

    def room(self) -> int:
        """Sagas it may claim now: up to ``max_in_flight``, none while the loop is saturated."""
        running = self.running
        if self.lag > SATURATED_LAG_S and running >= MIN_RUNNING:
            return 0
        return self.settings.max_in_flight - running

    def _sample_lag(self, expected: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.lag = 0.8 * self.lag + 0.2 * max(now - expected, 0.0)
        self._lag_timer = loop.call_at(now + LAG_PROBE_S, self._sample_lag, now + LAG_PROBE_S)

    async def run(self) -> int:
        """Advance due sagas until idle past the linger time or the slice ends; returns sagas taken."""
        s = self.settings
        d = self.dispatch
        d.clear_queued_flag()  # let the next start or recruit queue another job for another worker
        me = f"{self.name}:{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        linger_until = started + s.linger_seconds
        lease_ms = int(s.lease_seconds * 1000)
        self.yielding = False
        taken = 0
        loop = asyncio.get_running_loop()
        self._lag_timer = loop.call_at(loop.time() + LAG_PROBE_S, self._sample_lag, loop.time() + LAG_PROBE_S)
        try:
            while not self.draining.is_set():
                if time.monotonic() - started > s.slice_seconds:
                    self.yielding = True
                    if d.request_dispatch_flag():
                        self.request_dispatch()  # continue in a fresh job; RQ gets its loop back
                    break
                next_due: int | None = None
                room = self.room()
                if room > 0:
                    now = ms()
                    claim = await d.claim_async(
                        me, now, now + lease_ms, min(room, s.claim_batch), now + AVAILABLE_FOR_MS
                    )
                    if claim.ids:
                        taken += await self._take(claim, now, now + lease_ms)
                        linger_until = time.monotonic() + s.linger_seconds
                        continue
                    next_due = claim.next_due_ms
                wait = MAX_WAIT_S
                if next_due is not None:
                    wait = min(wait, max((next_due - ms()) / 1000.0, 0.0))
                if not self.active:
                    remaining = linger_until - time.monotonic()
                    if remaining <= 0:
                        if d.may_exit(me, ms()):
                            break
                        linger_until = time.monotonic() + 0.5
                        continue
                    wait = min(wait, remaining)
                if wait > 0.0005:
                    # At capacity it listens only for a saga to end: a wake token is for a worker with room.
                    await self._wait(wait, listen=room > 0)
        finally:
            if self._lag_timer is not None:
                self._lag_timer.cancel()
            self.yielding = True  # whatever ended the job: hand the sagas back at their next step
            if self.active:
                await asyncio.gather(*self.active, return_exceptions=True)
            if self._wake is not None:  # a token it pops is consumed here, not lost
                with contextlib.suppress(Exception):
                    await self._wake
                self._wake = None
            d.may_exit(me, ms())
        return taken

    async def _take(self, claim: Claim, now: int, lease_until_ms: int) -> int:
        for due in claim.due_ms:
            self.stats.observe("dispatch_lag", max(now - int(due), 0) / 1000.0)
        d = self.dispatch
        if claim.more and d.request_dispatch_flag():
            self.request_dispatch()  # recruit another idle worker
        stored = await d.acquire_async(claim.ids, self.name, lease_until_ms)
        if self.draining.is_set():
            for sw in stored.values():
                d.release(sw.instance.workflow_id, sw.fence, ms())
            return 0
        for wid in claim.ids:
            if wid in stored:
                task = asyncio.ensure_future(self._advance(stored[wid]))
                self.active.add(task)
                task.add_done_callback(self._on_end)
        return len(stored)

    def _on_end(self, task: asyncio.Task) -> None:
        self.active.discard(task)
        self._ended.set()

    async def _advance(self, stored: StoredWorkflow) -> None:
        try:
            await self.coordinator.run(stored)
        except Exception:
            # An engine-side failure (a Redis error, a bug): hand the saga back, to be retried shortly;
            # never spin on it.
            wid = stored.instance.workflow_id
            log.exception("advancing workflow %s failed; it will be retried", wid)
            try:
                self.dispatch.release(wid, stored.fence, ms() + RETRY_AFTER_FAILURE_MS)
            except Exception:
                log.exception("could not hand back workflow %s", wid)

    async def _wait(self, timeout: float, listen: bool) -> None:
        """Until a saga ends (room again), a wake token arrives (``listen``), or ``timeout`` passes."""
        self._ended.clear()
        if listen and (self._wake is None or self._wake.done()):
            self._wake = asyncio.ensure_future(self.wakes.wait(timeout))
        ended = asyncio.ensure_future(self._ended.wait())
        waits = {ended, self._wake} if self._wake is not None else {ended}
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if self._wake is not None and self._wake.done():
            with contextlib.suppress(Exception):
                self._wake.result()  # a connection error surfaces as a log line, then a fresh wait
            self._wake = None
