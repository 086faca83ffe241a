"""Running step attempts concurrently on the worker's event loop, and ending them cleanly.

An attempt is one call of a step action or compensation. A coroutine (``async def`` handler, HTTP
service) runs on the event loop and is cancelled at its timeout: the attempt has ended when the
cancellation has unwound (the HTTP request aborted). A blocking handler runs on a bounded pool of
threads and cannot be stopped: past its timeout it is awaited up to a grace period. If it ends within
it, the attempt ended as timed out; if not, it counts as still running, so the saga neither retries nor
compensates that step while it may still act (``engine.domain.outcomes``).

Nothing is recorded for an attempt before it has ended: its outcome is what the saga records. An
attempt is driven by callbacks (the call's completion, a timer), not by a task of its own: on the hot
path a worker starts thousands per second.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import AttemptStillRunning, StepTimeout
from engine.ports import Invocation
from engine.saga.step_threads import StepThreads

SWEEP_SLACK_S = 0.002
"""Timeouts are enforced within about this much (deadlines close together are handled in one pass)."""


@dataclass(slots=True)
class Outcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


class Attempt:
    """One attempt in flight: ``outcome()`` once ``done``; ``stop()`` ends it early (the deadline)."""

    def __init__(self, key: str, invocation: Invocation, timeout: float, runner: AttemptRunner):
        loop = asyncio.get_running_loop()
        self.key = key
        self.timeout = timeout
        self.started = time.perf_counter()
        self.ended: asyncio.Future[Outcome] = loop.create_future()
        """Resolved with the attempt's outcome once it has ended (or is known to be still running)."""
        self._runner = runner
        self._blocking = invocation.blocking
        self._why = ""
        self._watchers: list[Callable[[Attempt], None]] = []
        self._inner = runner.launch(invocation)
        self._inner.add_done_callback(self._on_inner)
        self._timer: asyncio.TimerHandle | None = None
        runner.watch_deadline(self, loop.time() + timeout)

    @property
    def done(self) -> bool:
        return self.ended.done()

    def outcome(self) -> Outcome:
        return self.ended.result()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Called once the call itself has ended, whenever that is (after a still-running attempt too)."""
        self._inner.add_done_callback(lambda _f: callback())

    def watch(self, callback: Callable[[Attempt], None]) -> None:
        """Called with this attempt once its outcome is known."""
        if self.ended.done():
            callback(self)
        else:
            self._watchers.append(callback)

    async def stop(self) -> Outcome:
        """End the attempt now (the workflow deadline): cancelled, or awaited up to the grace period."""
        if not self.ended.done() and not self._why:
            self._overrun("stopped at the workflow deadline")
        return await asyncio.shield(self.ended)

    # ------------------------------------------------------------------ callbacks
    def _on_inner(self, inner: asyncio.Future) -> None:
        if self.ended.done():
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elapsed = time.perf_counter() - self.started
        if not self._why:
            self._resolve(_ended(inner, elapsed))
            return
        # It ended after it had overrun (cancelled, or a thread that returned late): its effect may be
        # applied, so it counts as timed out, neither a success nor the error it raised late.
        late = not (inner.cancelled() or isinstance(_error(inner), StepTimeout))
        detail = f"step {self._why}; it ended {elapsed:.3f}s after it began" if late else f"step {self._why}"
        self._resolve(Outcome(False, error=StepTimeout(detail), elapsed=elapsed))

    def _overrun(self, why: str) -> None:
        """Past its timeout (or stopped): cancel a coroutine, and give either kind the grace to end."""
        if self.ended.done() or self._why:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._why = why or f"timed out after {self.timeout:.3f}s"
        if not self._blocking:
            self._inner.cancel()  # the coroutine unwinds (an HTTP request is aborted)
        self._timer = asyncio.get_running_loop().call_later(self._runner.grace, self._still_running)

    def _still_running(self) -> None:
        self._timer = None
        if self.ended.done():
            return
        grace = self._runner.grace
        error = AttemptStillRunning(
            f"{self._why}; still running {grace:g}s later (a blocking handler cannot be stopped)"
        )
        self._resolve(Outcome(False, error=error, elapsed=time.perf_counter() - self.started))

    def _resolve(self, outcome: Outcome) -> None:
        self.ended.set_result(outcome)
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher(self)


def _error(inner: asyncio.Future) -> BaseException | None:
    return None if inner.cancelled() else inner.exception()


def _ended(inner: asyncio.Future, elapsed: float) -> Outcome:
    if inner.cancelled():
        return Outcome(False, error=asyncio.CancelledError(), elapsed=elapsed)
    error = inner.exception()
    if error is not None:
        return Outcome(False, error=error, elapsed=elapsed)
    return Outcome(True, inner.result(), elapsed=elapsed)


class AttemptRunner:
    def __init__(self, threads: int = 64, grace: float = 5.0):
        self.grace = grace
        self.threads = StepThreads(threads)
        self._deadlines: list[tuple[float, int, Attempt]] = []
        self._seq = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def watch_deadline(self, attempt: Attempt, at: float) -> None:
        """Overrun ``attempt`` at loop time ``at`` unless it ended. One sweeping timer serves every
        attempt (a timer each would cost more than the attempt itself on the hot path)."""
        self._seq += 1
        heapq.heappush(self._deadlines, (at, self._seq, attempt))
        if self._sweeper is None or at < self._sweeper.when():
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweeper = asyncio.get_running_loop().call_at(at + SWEEP_SLACK_S, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, attempt = heapq.heappop(heap)
            if not attempt.done:
                attempt._overrun("")
        while heap and heap[0][2].done:  # ended before their deadline: drop them now
            heapq.heappop(heap)
        if heap:
            self._sweeper = loop.call_at(max(heap[0][0], now + SWEEP_SLACK_S), self._sweep)

    def start(self, key: str, invocation: Invocation, timeout: float) -> Attempt:
        return Attempt(key, invocation, timeout, self)

    def launch(self, invocation: Invocation) -> asyncio.Future:
        if invocation.blocking:
            return self.threads.submit(invocation.call)
        return asyncio.ensure_future(invocation.call())

    @staticmethod
    async def first_done(attempts: list[Attempt], until_monotonic: float | None) -> list[Attempt]:
        """Wait until at least one attempt has ended, or ``until`` passed; returns those that ended."""
        done = [a for a in attempts if a.done]
        if done or not attempts:
            return done
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        for a in attempts:
            a.watch(wake)
        timer = None
        if until_monotonic is not None:
            timer = loop.call_later(max(until_monotonic - time.monotonic(), 0.0), wake)
        try:
            await woken
        finally:
            if timer is not None:
                timer.cancel()
        return [a for a in attempts if a.done]

    def close(self) -> None:
        self.threads.close()
