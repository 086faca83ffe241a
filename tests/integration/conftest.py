"""Fixtures of the integration tests on top of tests/conftest.py (real Redis, real workers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from engine.client import EngineClient
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.worker.pool import WorkerPool
from tests.conftest import fast_settings


@dataclass
class Engine:
    client: EngineClient
    workers: Callable[..., WorkerPool]


@pytest.fixture
def strict_engine(tmp_path) -> Iterator[Engine]:
    """A second, private Redis that fsyncs every write (appendfsync always), with its own workers."""
    server = EmbeddedRedis(tmp_path / "strict-redis", port=free_port(), fsync="always")
    info = server.start()
    settings = fast_settings(info.url)
    pools: list[WorkerPool] = []

    def start(n: int = 1) -> WorkerPool:
        pool = WorkerPool(settings, concurrency=n, grace_seconds=10.0)
        pool.start()
        pools.append(pool)
        return pool

    try:
        yield Engine(EngineClient(settings), start)
    finally:
        for pool in pools:
            pool.stop()
        server.stop()
