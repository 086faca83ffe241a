"""The composition root: every collaborator of the engine is built here, once.

:class:`Engine` holds the stores (the one door to Redis), the integration port, the stats recorder and
the use cases. :class:`engine.EngineClient` (CLI, API, tests) and the worker's
:class:`engine.worker.runtime.Runtime` each hold one; nothing else wires collaborators together.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from engine.integration.http_service import HttpServicePort
from engine.integration.ports import IntegrationPort
from engine.integration.python_handlers import HandlerResolver, PythonHandlerPort
from engine.metrics import recorder_for
from engine.persistence.stores import Stores, open_stores
from engine.saga.controls import Controls
from engine.saga.starting import WorkflowStarter
from engine.saga.waveless import WavelessProcessingService, control_params
from engine.saga.waveless_controller import ReleaseController
from engine.saga.waveless_measurement import LoadMeter
from engine.settings import EngineSettings
from engine.stats import StatsRecorder


class Engine:
    def __init__(self, settings: EngineSettings, *, url: str | None = None, stores: Stores | None = None):
        self.settings = settings
        self.stores = stores or open_stores(settings, url)
        self.resolver = HandlerResolver()
        self.metrics = recorder_for(settings.metrics_enabled)
        """Prometheus counters and SLA histograms, added to the shared hash in Redis at each flush."""
        self.stats = StatsRecorder(sink=self.metrics)
        self.http = HttpServicePort(self.stores.services, stats=self.stats)
        self.port = IntegrationPort(PythonHandlerPort(self.resolver), self.http)
        self.starter = WorkflowStarter(
            self.stores.workflows,
            self.stores.definitions,
            self.stores.durability,
            self.stats,
            self.request_dispatch,
        )
        self.controls = Controls(self.stores.workflows, self.request_dispatch)

    def waveless(
        self,
        name: str | None = None,
        stop: threading.Event | None = None,
        draining: threading.Event | None = None,
    ) -> WavelessProcessingService:
        """The waveless release: a worker's controller (``stop``/``draining`` are its events) or an
        operator's view of it (CLI, API)."""
        stores = self.stores
        meter = LoadMeter(stores.waveless, stores.services, stores.stats, self.settings)
        controller = ReleaseController(
            settings=self.settings,
            store=stores.waveless,
            definitions=stores.definitions,
            starter=self.starter,
            meter=meter,
            params=control_params(self.settings),
            name=name or f"client:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            stop=stop,
            draining=draining,
        )
        return WavelessProcessingService(
            settings=self.settings, store=stores.waveless, definitions=stores.definitions, controller=controller
        )

    def request_dispatch(self) -> None:
        """Have a worker look at the schedule: an RQ dispatch job (at most one queued at a time)."""
        self.stores.dispatch_queue.request()

    def flush_stats(self) -> None:
        """Add what this process measured to the shared rollups and the Prometheus metrics."""
        hist, counters = self.stats.drain()
        self.stores.stats.flush(time.time(), hist, counters)
        if self.metrics is not None:
            self.stores.metrics.add(self.metrics.drain())
