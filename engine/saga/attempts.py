"""Running step attempts concurrently on the worker's event loop, and ending them cleanly.

An attempt is one call of a step action or compensation. A coroutine (``async def`` handler, HTTP
service) runs on the event loop and is cancelled at its timeout: the attempt has ended when the
cancellation has unwound (the HTTP request aborted). A blocking handler runs on a bounded pool of
threads and cannot be stopped: past its timeout it is awaited up to a grace period. If it ends within
it, the attempt ended as timed out; if not, it counts as still running, so the saga neither retries nor
compensates that step while it may still act (``engine.domain.outcomes``).

Nothing is recorded for an attempt before it has ended: its outcome is what the saga records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.errors import AttemptStillRunning, StepTimeout
from engine.ports import Invocation


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


class Attempt:
    """One attempt in flight: ``outcome()`` once ``done``; ``stop()`` ends it early (the deadline)."""

    def __init__(self, key: str, invocation: Invocation, timeout: float, runner: AttemptRunner):
        self.key = key
        self.timeout = timeout
        self.started = time.perf_counter()
        self._runner = runner
        self._blocking = invocation.blocking
        self._inner = runner.launch(invocation)
        self._stopping = asyncio.Event()
        self.task: asyncio.Task[Outcome] = asyncio.ensure_future(self._watch())

    @property
    def done(self) -> bool:
        return self.task.done()

    def outcome(self) -> Outcome:
        return self.task.result()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Called once the call itself has ended, whenever that is (after a still-running attempt too)."""
        self._inner.add_done_callback(lambda _f: callback())

    async def stop(self) -> Outcome:
        """End the attempt now (the workflow deadline): cancelled, or awaited up to the grace period."""
        self._stopping.set()
        return await asyncio.shield(self.task)

    async def _watch(self) -> Outcome:
        inner = self._inner
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({inner, stopping}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        elapsed = time.perf_counter() - self.started
        if inner.done():
            return self._ended(inner, elapsed)
        why = "stopped at the workflow deadline" if self._stopping.is_set() else f"timed out after {self.timeout:.3f}s"
        if not self._blocking:
            inner.cancel()  # the coroutine unwinds (an HTTP request is aborted); a thread cannot be stopped
        await asyncio.wait({inner}, timeout=self._runner.grace)
        elapsed = time.perf_counter() - self.started
        if not inner.done():
            return Outcome(
                False,
                error=AttemptStillRunning(
                    f"{why}; still running {self._runner.grace:g}s later (a blocking handler cannot be stopped)"
                ),
                elapsed=elapsed,
            )
        ended = self._ended(inner, elapsed)
        if ended.ok or not isinstance(ended.error, asyncio.CancelledError | StepTimeout):
            # It returned (or failed on its own) after it had overrun: its effect may be applied, so it
            # counts as timed out, not as a success nor as the error it raised late.
            return Outcome(
                False, error=StepTimeout(f"step {why}; it ended {elapsed:.3f}s after it began"), elapsed=elapsed
            )
        return Outcome(False, error=StepTimeout(f"step {why}"), elapsed=elapsed)

    @staticmethod
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
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="wes-step")

    def start(self, key: str, invocation: Invocation, timeout: float) -> Attempt:
        return Attempt(key, invocation, timeout, self)

    def launch(self, invocation: Invocation) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if invocation.blocking:
            return loop.run_in_executor(self.pool, invocation.call)
        return asyncio.ensure_future(invocation.call())

    @staticmethod
    async def first_done(attempts: list[Attempt], until_monotonic: float | None) -> list[Attempt]:
        """Wait until at least one attempt has ended, or ``until`` passed; returns those that ended."""
        done = [a for a in attempts if a.done]
        if done or not attempts:
            return done
        timeout = None if until_monotonic is None else max(until_monotonic - time.monotonic(), 0.0)
        await asyncio.wait([a.task for a in attempts], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return [a for a in attempts if a.done]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
