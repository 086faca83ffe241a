"""Everything a worker process holds: the engine, its event loop with the dispatcher and the saga
coordinator, the step attempt runner and the services' bulkheads, and the background threads
(heartbeat, ticker, triggers, health checks, the waveless leader).

Dispatch amortises RQ's per-job cost: one RQ job claims due sagas and keeps going while work arrives
(lingering idle on a wake list), running many at once, so the hot path is one Lua round trip per step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid

from engine.saga.attempts import AttemptRunner
from engine.saga.bulkheads import Bulkheads
from engine.saga.health import HealthChecker
from engine.saga.service import LeaseBook, SagaCoordinatorService
from engine.saga.triggers import TriggerService
from engine.settings import EngineSettings
from engine.wiring import Engine
from engine.worker.dispatcher import Dispatcher

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


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's where installed (a declared dependency: its loop costs a fraction of asyncio's per
    callback, which a worker pays several times per step), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency on the platforms it supports
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


LIVE_WORKER_MS = 15_000
"""A worker whose last heartbeat is older than this does not share the services' capacity."""


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
        self._next_renew = 0.0
        self.loop = new_event_loop()
        """Every saga, step attempt and commit of this process runs on it, in the dispatch job's thread."""
        self.attempts = AttemptRunner(settings.step_threads, settings.attempt_grace_seconds)
        self.bulkheads = Bulkheads(self.stores.services, max_waiting=settings.max_in_flight)
        self.service = SagaCoordinatorService(
            self.stores.workflows,
            self.stores.definitions,
            self.engine.port,
            attempts=self.attempts,
            bulkheads=self.bulkheads,
            stats=self.engine.stats,
            leases=self.leases,
            request_dispatch=self.request_dispatch,
            fsync=self.stores.durability.fsync(),
            resolve_custom=self.engine.resolver.resolve,
            stopping=self._stopping,
            lock_retry_seconds=settings.lock_retry_seconds,
            compensation_floor=settings.compensation_floor,
        )
        self.dispatcher = Dispatcher(
            settings,
            self.dispatch,
            self.stores.wakes,
            self.service,
            self.engine.stats,
            self.name,
            self.draining,
            self.request_dispatch,
        )

    def _stopping(self) -> bool:
        return self.draining.is_set() or self.dispatcher.yielding

    # ------------------------------------------------------------------ dispatch
    def request_dispatch(self) -> None:
        self.engine.request_dispatch()

    def run_dispatch(self) -> int:
        """The RQ dispatch job's body: run the dispatcher on this process's event loop."""
        return self.loop.run_until_complete(self.dispatcher.run())

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
        lease_s = self.settings.lease_seconds
        if time.monotonic() >= self._next_renew:
            # A third of the lease apart: two renewals may be missed before another worker takes over.
            self._next_renew = time.monotonic() + lease_s / 3.0
            lost = self.dispatch.renew(self.leases.snapshot(), ms() + int(lease_s * 1000))
            for wid in lost:
                log.debug("lease of %s is gone", wid)
        self.stores.workers.beat(self.name, ms())
        self.bulkheads.live_workers = max(1, len(self.stores.workers.alive(ms() - LIVE_WORKER_MS)))
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
