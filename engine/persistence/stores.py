"""The engine's one door to Redis: every repository and store over one set of connections.

Nothing outside ``engine.persistence`` imports redis; the engine's other layers get what they need
from a :class:`Stores` built by :func:`open_stores`, and never see a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis

from engine.persistence.connection import connect, resolve_url
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.dispatch import Dispatch
from engine.persistence.dispatch_queue import DispatchQueue
from engine.persistence.durability import Durability
from engine.persistence.keys import Keys
from engine.persistence.metrics_store import MetricsStore
from engine.persistence.service_registry import ServiceRegistry
from engine.persistence.stats_store import StatsStore
from engine.persistence.trigger_store import TriggerStore
from engine.persistence.wake_listener import WakeListener
from engine.persistence.waveless_store import WavelessStore
from engine.persistence.worker_registry import WorkerRegistry
from engine.persistence.workflow_index import WorkflowIndex
from engine.persistence.workflow_repository import WorkflowRepository
from engine.settings import EngineSettings


@dataclass
class Stores:
    settings: EngineSettings
    url: str
    client: redis.Redis = field(repr=False)
    """The shared connection pool; only code in ``engine.persistence`` touches it."""

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.key_prefix)
        self.workflows = WorkflowRepository(self.client, self.settings)
        self.index = WorkflowIndex(self.client, self.keys)
        self.definitions = DefinitionRepository(self.client, self.settings)
        self.services = ServiceRegistry(self.client, self.settings)
        self.stats = StatsStore(self.client, self.settings.key_prefix)
        self.metrics = MetricsStore(self.client, self.keys)
        self.workers = WorkerRegistry(self.client, self.keys)
        self.durability = Durability(self.client)

    @cached_property
    def dispatch(self) -> Dispatch:
        return Dispatch(self.client, self.settings)

    @cached_property
    def dispatch_queue(self) -> DispatchQueue:
        """RQ's queue of dispatch jobs, on a connection of its own, opened on first use."""
        return DispatchQueue(connect(self.settings, decode=False, url=self.url), self.settings.key_prefix)

    @cached_property
    def wakes(self) -> WakeListener:
        """A worker's wait for new work, on a connection of its own (asyncio)."""
        return WakeListener(self.client, self.keys)

    @cached_property
    def triggers(self) -> TriggerStore:
        """Event streams are read by one consumer group shared by every worker."""
        return TriggerStore(self.client, self.keys, f"{self.settings.key_prefix}-triggers")

    @cached_property
    def waveless(self) -> WavelessStore:
        return WavelessStore(self.client, self.settings)

    def ping(self) -> bool:
        return bool(self.client.ping())


def open_stores(settings: EngineSettings, url: str | None = None) -> Stores:
    """Connect to the configured Redis (``REDIS_URL``, or the embedded server ``wes up`` recorded)."""
    url = url or resolve_url(settings)
    return Stores(settings, url, connect(settings, url=url))
