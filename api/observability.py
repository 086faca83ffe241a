"""``/metrics``: the engine's collector (``engine.metrics``: workflows, SLA histograms, breakers,
waveless...) plus the API's own request metrics, in one registry per app."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import EngineClient, build_registry

if TYPE_CHECKING:
    from api.deps import Services

VERSION = "1.0.0"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Our bars (p99 of a start <= 20 ms, of a list <= 50 ms) are bounds."""


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "wes_api_requests", "API requests by route template and status.", ("method", "route", "status"),
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "wes_api_request_duration_seconds", "API request latency until the response is sent.",
            ("method", "route"), buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.sse_clients = Gauge("wes_api_sse_clients", "Live feed (SSE) connections open.", registry=registry)


def metrics_registry(client: EngineClient, with_engine: bool) -> tuple[CollectorRegistry, ApiMetrics]:
    registry = build_registry(client.engine.stores) if with_engine else CollectorRegistry(auto_describe=False)
    return registry, ApiMetrics(registry)


def render(services: Services) -> tuple[bytes, str]:
    return generate_latest(services.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI: times every HTTP request, labelled by its route template (bounded), never its path."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sse = scope["path"].endswith("/events/stream")

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics: ApiMetrics = scope["app"].state.api.metrics
        if sse:
            metrics.sse_clients.inc()
        try:
            await self.app(scope, receive, send_timed)
        finally:
            if sse:
                metrics.sse_clients.dec()
            op = scope["app"].state.operations.find(scope["method"], scope["path"])
            route = op.template if op is not None else "unmatched"
            metrics.requests.labels(scope["method"], route, str(status)).inc()
            if not sse:
                metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
