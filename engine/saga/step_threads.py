"""The bounded pool of threads that runs blocking (plain ``def``) handlers for the event loop.

Lighter than ``loop.run_in_executor``: no ``concurrent.futures.Future`` with its lock per call, and the
results of calls that end close together reach the loop with one wake-up, not one each. Threads are
started as calls need them, up to the bound; past it, calls queue.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class StepThreads:
    def __init__(self, max_threads: int = 64):
        self.max_threads = max(1, max_threads)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0
        """Calls put on the queue and not yet taken: each needs an idle thread of its own."""
        self._done: deque[tuple[asyncio.Future, bool, Any]] = deque()
        self._wakeup: asyncio.AbstractEventLoop | None = None
        """The loop a delivery is already scheduled on (one wake-up carries every result)."""

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            self._queued += 1
            start = self._idle < self._queued and self._threads < self.max_threads
            if start:
                self._threads += 1
                self._idle += 1
        self._jobs.put((loop, fut, fn))
        if start:
            threading.Thread(target=self._work, name="wes-step", daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, fut, fn = job
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            try:
                item = (fut, True, fn())
            except BaseException as exc:  # a handler's error is data for the saga
                item = (fut, False, exc)
            with self._lock:
                self._idle += 1
                self._done.append(item)
                schedule = self._wakeup is None
                if schedule:
                    self._wakeup = loop
            if schedule:
                try:
                    loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: the process is going away
                    return

    def _deliver(self) -> None:
        with self._lock:
            items = list(self._done)
            self._done.clear()
            self._wakeup = None
        for fut, ok, value in items:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def close(self) -> None:
        with self._lock:
            n = self._threads
        for _ in range(n):
            self._jobs.put(None)
