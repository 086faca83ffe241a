"""The API under test: a real uvicorn subprocess (``ApiComponent``, as `wes up` runs it) over the
session's real Redis, with real worker processes, and one API key per role (``WES_API_KEYS``).

One stack serves the whole package (its own key prefix); tests that need other server settings
(a tight rate limit, chaos disabled) start their own with ``start_api``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.client import EngineClient
from engine.persistence.embedded import free_port
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool
from tests.conftest import fast_settings
from tests.integration.support import step
from wes_cli.components import ApiComponent

ROLES = ("viewer", "operator", "admin")
PREFIX = "/api/v1"
ORDERS = "api-orders"
"""The saga the stack's waveless controller starts for each released order."""


@dataclass
class Stack:
    settings: EngineSettings
    url: str
    keys: dict[str, str]
    client: EngineClient
    log_file: Path
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def http(self, role: str | None = "admin", *, key: str | None = None) -> httpx.Client:
        """A client sending ``role``'s key (or ``key``; neither: no Authorization header)."""
        name = key or role or "-"
        found = self._clients.get(name)
        if found is None:
            secret = key or (self.keys[role] if role else None)
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            found = self._clients[name] = httpx.Client(
                base_url=self.url + PREFIX, headers=headers, timeout=15.0, trust_env=False
            )
        return found

    def root(self) -> httpx.Client:
        """No key, no prefix: /healthz, /readyz, /metrics."""
        found = self._clients.get("/")
        if found is None:
            found = self._clients["/"] = httpx.Client(base_url=self.url, timeout=15.0, trust_env=False)
        return found

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


def api_env(keys: dict[str, str], **settings: Any) -> dict[str, str]:
    env = {"WES_API_KEYS": ",".join(f"{role}:{key}" for role, key in keys.items())}
    env.update({f"WES_API_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def role_keys() -> dict[str, str]:
    return {role: f"{role}-{uuid.uuid4().hex}" for role in ROLES}


@pytest.fixture(scope="session")
def start_api(tmp_path_factory) -> Iterator[Callable[..., ApiComponent]]:
    """Factory: ``start_api(settings, keys, **api_settings)`` runs an API until the session ends."""
    started: list[ApiComponent] = []

    def start(settings: EngineSettings, keys: dict[str, str], chaos: bool = False, **api: Any) -> ApiComponent:
        log = tmp_path_factory.mktemp("api") / "api.log"
        component = ApiComponent(settings, port=free_port(), chaos=chaos, log_file=log, env=api_env(keys, **api))
        component.start()
        started.append(component)
        return component

    yield start
    for component in started:
        component.stop()


def running_stack(redis_url: str, start_api: Callable[..., ApiComponent], logs: Path) -> Iterator[Stack]:
    """Workers, an API with a key per role and chaos on, under a fresh key prefix; ready once /readyz
    says so (the workers' first heartbeats come a moment after the pool starts)."""
    settings = fast_settings(redis_url, waveless_definition=ORDERS)
    pool = WorkerPool(settings, concurrency=2, grace_seconds=10.0, log_file=str(logs / "workers.log"))
    pool.start()
    keys = role_keys()
    api = start_api(settings, keys, chaos=True, rate_limit_per_second=1000, rate_limit_burst=1000)
    s = Stack(settings, api.url, keys, EngineClient(settings), api.log_file or Path())
    deadline = time.monotonic() + 30
    while s.root().get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, f"/readyz not 200 within 30 s: {s.root().get('/readyz').text}"
        time.sleep(0.1)
    try:
        yield s
    finally:
        s.close()
        pool.stop()


@pytest.fixture(scope="session")
def stack(redis_url, start_api, tmp_path_factory) -> Iterator[Stack]:
    yield from running_stack(redis_url, start_api, tmp_path_factory.mktemp("workers"))


@pytest.fixture(scope="session")
def flow(stack) -> str:
    """A three-step definition on the test handlers, applied through the API."""
    name = f"flow-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "steps": [step("reserve"), step("charge"), step("ship")]}
    r = stack.http("admin").post("/definitions", json=body)
    assert r.status_code == 201, r.text
    return name


def wait_status(http: httpx.Client, wid: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"/workflows/{wid}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow {wid} still {body['status']}, wanted {statuses}")
        time.sleep(0.05)


def problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem response and return its body."""
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["detail"] and body["title"], body
    assert body["type"] == f"urn:wes:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body
