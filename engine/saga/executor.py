"""Runs step handlers with a timeout.

A lone step on the main thread runs inline under an interval timer (SIGALRM), which costs a couple
of microseconds; parallel branches, and any step on another thread, run on daemon threads and are
abandoned (not killed) when they overrun, since Python cannot stop a thread.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import StepTimeout


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


class Pending:
    """A step running on a pool thread."""

    def __init__(self, key: str, timeout: float, notify: queue.SimpleQueue):
        self.key = key
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.notify = notify
        self.outcome: Outcome | None = None
        self.done = threading.Event()


class StepExecutor:
    def __init__(self, max_threads: int = 64):
        self._max_threads = max_threads
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._unclaimed = 0
        """Tasks queued and not yet taken by a thread; each needs an idle thread of its own."""
        self._lock = threading.Lock()
        self._armed = False
        self._alarm_handler = self._on_alarm
        self._alarm_installed = False

    # ---------------------------------------------------------------- inline
    def can_run_inline(self) -> bool:
        return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def run_inline(self, fn: Callable[[], Any], timeout: float) -> Outcome:
        # The handler stays installed between steps: arming the timer is all a step pays for.
        if not self._alarm_installed:
            signal.signal(signal.SIGALRM, self._alarm_handler)
            self._alarm_installed = True
        start = time.perf_counter()
        try:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            try:
                value = fn()
            finally:
                self._armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            return Outcome(True, value, None, time.perf_counter() - start)
        except StepTimeout as exc:
            return Outcome(
                False,
                None,
                StepTimeout(f"step timed out after {timeout:.3f}s") if not str(exc) else exc,
                time.perf_counter() - start,
            )
        except Exception as exc:
            return Outcome(False, None, exc, time.perf_counter() - start)

    def _on_alarm(self, signum, frame):
        if self._armed:
            self._armed = False
            raise StepTimeout("")

    # ---------------------------------------------------------------- pooled
    def submit(self, key: str, fn: Callable[[], Any], timeout: float, notify: queue.SimpleQueue) -> Pending:
        """Run ``fn`` on a pool thread; ``notify`` (owned by the waiting runner) gets the Pending when done."""
        pending = Pending(key, timeout, notify)
        with self._lock:
            self._unclaimed += 1
        self._tasks.put((pending, fn))
        self._ensure_thread()
        return pending

    def _ensure_thread(self) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            # An idle thread that has not yet taken an earlier task is spoken for: without counting
            # unclaimed tasks, parallel branches submitted together would run one after the other.
            if self._idle >= self._unclaimed or len(self._threads) >= self._max_threads:
                return
            t = threading.Thread(target=self._loop, name="wes-step", daemon=True)
            self._threads.append(t)
            self._idle += 1
            t.start()

    def _loop(self) -> None:
        while True:
            pending, fn = self._tasks.get()
            with self._lock:
                self._idle -= 1
                self._unclaimed -= 1
            start = time.perf_counter()
            try:
                outcome = Outcome(True, fn(), None, time.perf_counter() - start)
            except BaseException as exc:  # a handler's error is data for the saga
                outcome = Outcome(False, None, exc, time.perf_counter() - start)
            pending.outcome = outcome
            pending.done.set()
            pending.notify.put(pending)
            with self._lock:
                self._idle += 1

    @staticmethod
    def wait_any(pendings: list[Pending], until_monotonic: float | None) -> list[Pending]:
        """Block until at least one of ``pendings`` finished or overran, or ``until`` passed.

        Returns the finished ones plus those past their deadline (marked with a StepTimeout)."""
        while True:
            now = time.monotonic()
            ready = [p for p in pendings if p.done.is_set()]
            overdue = [p for p in pendings if not p.done.is_set() and p.deadline <= now]
            for p in overdue:
                p.outcome = Outcome(False, None, StepTimeout(f"step timed out after {p.timeout:.3f}s"), p.timeout)
            if ready or overdue:
                return ready + overdue
            nearest = min(p.deadline for p in pendings)
            if until_monotonic is not None:
                if now >= until_monotonic:
                    return []
                nearest = min(nearest, until_monotonic)
            try:
                pendings[0].notify.get(timeout=max(0.0005, min(nearest - now, 1.0)))
            except queue.Empty:
                pass
