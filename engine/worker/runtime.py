"""Everything a worker process holds: clients, repositories, the saga service, background threads,
and the dispatch loop that RQ dispatch jobs run.

Dispatch amortises RQ's per-job cost: one RQ job claims due sagas in batches and keeps going while
work arrives (lingering idle on a wake list), so the hot path is one Lua round trip per step.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from engine.saga.executor import StepExecutor
from engine.saga.health import HealthChecker
from engine.saga.service import LeaseBook, SagaCoordinatorService
from engine.saga.triggers import TriggerService
from engine.settings import EngineSettings
from engine.wiring import Engine

log = logging.getLogger(__name__)

_current: Runtime | None = None
_current_lock = threading.Lock()


def current_runtime() -> Runtime:
    """The process's runtime; created from the environment if a plain RQ worker runs the job."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(EngineSettings())
            _current.start_background()
        return _current


def install_runtime(runtime: Runtime) -> None:
    global _current
    with _current_lock:
        _current = runtime


def ms() -> int:
    return int(time.time() * 1000)


class Runtime:
    def __init__(self, settings: EngineSettings, name: str | None = None):
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.engine = Engine(settings)
        self.stores = self.engine.stores
        self.dispatch = self.stores.dispatch
        self.leases = LeaseBook()
        self.stop_event = threading.Event()
        """Background threads stop; set at process shutdown."""
        self.draining = threading.Event()
        """No new work is taken; the step in flight finishes and its saga is handed back."""
        self._threads: list[threading.Thread] = []
        self.service = SagaCoordinatorService(
            self.stores.workflows,
            self.stores.definitions,
            self.engine.port,
            executor=StepExecutor(),
            stats=self.engine.stats,
            leases=self.leases,
            request_dispatch=self.request_dispatch,
            fsync=self.stores.durability.fsync(),
            resolve_custom=self.engine.resolver.resolve,
            stopping=self.draining.is_set,
            lock_retry_seconds=settings.lock_retry_seconds,
            pipeline_depth=settings.pipeline_depth,
        )

    # ------------------------------------------------------------------ dispatch
    def request_dispatch(self) -> None:
        self.engine.request_dispatch()

    def run_dispatch(self) -> int:
        s = self.settings
        d = self.dispatch
        d.clear_queued_flag()  # let the next start or recruit queue another job for another worker
        me = f"{self.name}:{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        linger_until = started + s.linger_seconds
        lease_ms = int(s.lease_seconds * 1000)
        advanced = 0
        while not self.draining.is_set():
            now = ms()
            claim = d.claim(me, now, now + lease_ms, s.claim_batch, now + 1500)
            if claim.ids:
                if claim.more and d.request_dispatch_flag():
                    self.request_dispatch()  # recruit another idle worker
                advanced += self._advance_batch(claim.ids, now + lease_ms)
                linger_until = time.monotonic() + s.linger_seconds
                if time.monotonic() - started > s.slice_seconds:
                    if d.request_dispatch_flag():
                        self.request_dispatch()  # continue in a fresh job; RQ gets its loop back
                    break
                continue
            remaining = linger_until - time.monotonic()
            if remaining <= 0:
                if d.may_exit(me, ms()):
                    break
                linger_until = time.monotonic() + 0.5
                continue
            wait = min(remaining, 0.25)  # short, so a warm shutdown is noticed quickly
            if claim.next_due_ms is not None:
                wait = min(wait, max((claim.next_due_ms - ms()) / 1000.0, 0.0))
            if wait > 0.0005:
                d.wait_for_wake(wait)
        else:
            d.may_exit(me, ms())
        return advanced

    def _advance_batch(self, ids: list[str], lease_until_ms: int) -> int:
        stored = self.dispatch.acquire(ids, self.name, lease_until_ms)
        if self.draining.is_set():
            for sw in stored.values():
                self.dispatch.release(sw.instance.workflow_id, sw.fence, ms())
            return 0
        try:
            return self.service.advance_many([stored[wid] for wid in ids if wid in stored])
        except Exception:
            # An engine-side failure (a Redis error, a bug): hand back what this worker still holds,
            # to be retried shortly; never spin on it.
            log.exception("advancing workflows failed; they will be retried")
            for wid, fence in self.leases.snapshot().items():
                try:
                    self.dispatch.release(wid, fence, ms() + 5000)
                except Exception:
                    log.exception("could not hand back workflow %s", wid)
                self.leases.drop(wid)
            return 0

    # ------------------------------------------------------------------ background
    def start_background(self) -> None:
        self._spawn(self._heartbeat_loop, "wes-heartbeat")
        self._spawn(self._ticker_loop, "wes-ticker")
        triggers = TriggerService(
            self.stores.triggers,
            self.stores.definitions,
            self.engine.starter,
            self.name,
            self.stop_event,
        )
        self._spawn(triggers.run, "wes-triggers")
        self.health = HealthChecker(self.stores.services, self.name, self.stop_event)
        self._spawn(self.health.run, "wes-health")
        if self.settings.waveless_enabled:
            self.waveless = self.engine.waveless(self.name, self.stop_event, self.draining)
            self._spawn(self.waveless.run, "wes-waveless")

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _heartbeat_loop(self) -> None:
        period = max(0.05, min(self.settings.lease_seconds / 3.0, self.settings.stats_flush_seconds))
        while not self.stop_event.wait(period):
            try:
                self.beat()
            except Exception:
                log.exception("heartbeat failed")

    def beat(self) -> None:
        lost = self.dispatch.renew(self.leases.snapshot(), ms() + int(self.settings.lease_seconds * 1000))
        for wid in lost:
            log.debug("lease of %s is gone", wid)
        self.stores.workers.beat(self.name, ms())
        self.engine.flush_stats()

    def _ticker_loop(self) -> None:
        while not self.stop_event.wait(self.settings.tick_seconds):
            try:
                if self.dispatch.tick(ms()):
                    self.request_dispatch()
            except Exception:
                log.exception("ticker failed")

    def shutdown(self) -> None:
        self.draining.set()
        self.stop_event.set()
        try:
            self.engine.flush_stats()
            self.stores.workers.leave(self.name)
        except Exception:
            pass
