"""Helpers of the service-integration tests: services configuration, direct calls, sim and feed readers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx

from engine.client import EngineClient
from engine.domain.policies import ActionRef
from engine.domain.services import HealthStatus
from engine.integration.http_service import HttpServicePort
from engine.persistence.codec import loads
from engine.ports import StepContext
from sim.launcher import SERVICES, SimCluster, stats
from tests.integration.support import wait_for

FAST_BREAKER = {"window": 10, "min_calls": 4, "failure_rate": 0.5, "open_for": "1s", "half_open_calls": 2}
FAST_HEALTH = {"path": "/health", "interval": "1s", "timeout": "500ms"}


def service(
    cluster: SimCluster,
    sim_service: str,
    instances: Iterable[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One engine service over instances of a simulated service (all of them by default), with
    the short breaker and health policies unless ``fields`` say otherwise."""
    forward, undo = SERVICES[sim_service]
    chosen = list(instances) if instances is not None else [i.instance_id for i in cluster.instances_of(sim_service)]
    out: dict[str, Any] = {
        "instances": [{"id": iid, "url": cluster.url(iid)} for iid in chosen],
        "operations": {forward: f"/{forward}", undo: f"/{undo}"},
        "breaker": dict(FAST_BREAKER),
        "health": dict(FAST_HEALTH),
    }
    out.update(fields)
    return out


def all_services(cluster: SimCluster, **overrides: dict[str, Any]) -> dict[str, Any]:
    """Every simulated service under its own name (``SimCluster.services_config`` plus short policies);
    ``overrides`` maps a service name to fields replacing its defaults."""
    config = cluster.services_config()["services"]
    out = {}
    for name in config:
        out[name] = service(cluster, name, **overrides.get(name, {}))
    return {"services": out}


def context(
    *,
    workflow_id: str | None = None,
    step_id: str = "step",
    key: str | None = None,
    correlation_id: str | None = None,
    timeout: float = 3.0,
    data: dict[str, Any] | None = None,
) -> StepContext:
    wid = workflow_id or f"wf-{uuid.uuid4().hex[:12]}"
    return StepContext(
        workflow_id=wid,
        workflow_type="direct",
        step_id=step_id,
        attempt=1,
        idempotency_key=key or f"{wid}:{step_id}",
        correlation_id=correlation_id or wid,
        input=dict(data or {}),
        tracing={"trace_id": uuid.uuid4().hex},
        timeout=timeout,
    )


def call(port: HttpServicePort, name: str, operation: str, **ctx: Any) -> Any:
    """One call through the breaker and load balancer, with a fresh idempotency key."""
    return port.call(ActionRef(service=name, operation=operation), context(**ctx))


def op_calls(url: str, operation: str) -> int:
    """Calls of ``operation`` that reached the sim instance at ``url`` (its own in-memory count)."""
    return int(stats(url)["operations"][operation]["calls"])


def breaker_events(client: EngineClient, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The global feed's breaker events of service ``name`` (``t`` = kind, ``d`` = JSON)."""
    out = []
    for _, fields in client.r.xrange(client.repo.keys.feed):
        if not fields.get("t", "").startswith("CircuitBreaker"):
            continue
        data = loads(fields["d"])
        if data.get("service") == name and (kind is None or fields["t"] == kind):
            out.append({"type": fields["t"], **data})
    return out


def health_record(client: EngineClient, name: str, instance_id: str) -> dict[str, Any]:
    """The stored health check result, read from Redis (bypassing the registry's per-process cache)."""
    raw = client.r.hget(client.services.keys.service_health(name), instance_id)
    return loads(raw) if raw else {}


def wait_health(
    client: EngineClient, name: str, instance_id: str, status: HealthStatus, after: float, timeout: float = 5.0
) -> float:
    """Wait for a health check of ``instance_id`` made after ``after`` (epoch s) with ``status``; the
    seconds from ``after`` until that check."""

    def done() -> dict[str, Any] | None:
        rec = health_record(client, name, instance_id)
        ok = rec.get("status") == status.value and rec.get("checked_at", 0) >= after
        return rec if ok else None

    rec = wait_for(done, timeout, f"{instance_id} to be checked {status.value}")
    return float(rec["checked_at"]) - after


def all_requests(url: str) -> list[dict[str, Any]]:
    """Every operation call the sim instance at ``url`` logged (its last 1000)."""
    response = httpx.get(f"{url}/_sim/requests", timeout=5.0)
    response.raise_for_status()
    return response.json()["requests"]


def requests_for(url: str, workflow_ids: Iterable[str], operation: str | None = None) -> list[dict[str, Any]]:
    """The sim instance's logged operation calls of these workflows."""
    wanted = set(workflow_ids)
    return [
        r
        for r in all_requests(url)
        if r.get("workflow_id") in wanted and (operation is None or r["operation"] == operation)
    ]


def sleep_until(epoch_s: float) -> None:
    delay = epoch_s - time.time()
    if delay > 0:
        time.sleep(delay)
