"""ServiceIntegrationPort over HTTP: steps that name a service endpoint (``service`` + ``operation``).

Every call goes through the endpoint's circuit breaker (shared by all workers, in Redis) and its
load balancer, carries ``Idempotency-Key``, ``X-Correlation-ID`` and a W3C ``traceparent``, and is
classified for retries: a 4xx is final unless it is 408 or 429; 5xx, timeouts and connection errors
may be retried. A call refused by an open breaker never touches the network, and its retry waits at
least until the breaker would let a trial call through.

With a ``stats`` recorder (the worker's), every call is counted per service on the hot path (an
in-memory append, flushed to the 10-second rollups with the rest): the family ``SERVICE_CALLS`` of
``engine.metrics``, labelled (service, outcome): ``ok`` or ``failed`` as the breaker recorded it,
``refused`` when the breaker or the lack of a healthy instance refused it. These feed the
availability and error-rate history of ``GET /sla/series``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import httpx
import orjson

from engine.domain.policies import ActionRef
from engine.domain.services import HealthStatus, ServiceEndpoint
from engine.errors import NonRetryableStepError, StepError, StepTimeout
from engine.integration.http_client import HttpClient, HttpError
from engine.metrics import SERVICE_CALLS
from engine.persistence.service_registry import Lease, Refusal, ServiceNotFound, ServiceRegistry
from engine.ports import CompensationResult, StepContext, StepResult
from engine.stats import StatsRecorder

RETRYABLE_4XX = frozenset({408, 429})
NO_INSTANCE_RETRY_S = 1.0


class CircuitOpenError(StepError):
    """The service's circuit breaker refused the call; nothing was sent."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


class ServiceUnavailable(StepError):
    """No healthy instance of the service; nothing was sent."""

    def __init__(self, message: str, retry_after: float = NO_INSTANCE_RETRY_S):
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


class HttpServicePort:
    def __init__(
        self, registry: ServiceRegistry, client: httpx.Client | None = None, stats: StatsRecorder | None = None
    ):
        self.registry = registry
        self.stats = stats
        self.http = client or httpx.Client(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50), trust_env=False
        )
        self._pid = os.getpid()
        self._async_http: HttpClient | None = None

    # ------------------------------------------------------------------ ServiceIntegrationPort
    def execute_step(self, endpoint: ActionRef, ctx: StepContext) -> StepResult:
        return StepResult(self.call(endpoint, ctx))

    def compensate_step(self, endpoint: ActionRef, ctx: StepContext) -> CompensationResult:
        return CompensationResult(self.call(endpoint, ctx))

    def check_health(self, endpoint: ActionRef) -> HealthStatus:
        service = self.registry.endpoint(endpoint.service or "")
        health = self.registry.health(service.name)
        statuses = {health.get(i.id, {}).get("status", HealthStatus.UNKNOWN.value) for i in service.instances}
        if HealthStatus.HEALTHY.value in statuses:
            return HealthStatus.HEALTHY
        return HealthStatus.UNHEALTHY if statuses == {HealthStatus.UNHEALTHY.value} else HealthStatus.UNKNOWN

    def problems(self, endpoint: ActionRef) -> list[str]:
        try:
            service = self.registry.endpoint(endpoint.service or "")
        except ServiceNotFound as exc:
            return [f"{exc} (apply it with `wes services apply FILE`)"]
        if not service.instances:
            return [f"service {service.name!r} has no instances"]
        return []

    # ------------------------------------------------------------------ the call
    def call(self, ref: ActionRef, ctx: StepContext) -> Any:
        """A blocking call (tools, the breaker bench); workers use :meth:`call_async`."""
        if os.getpid() != self._pid:  # a forked process must not share the parent's sockets
            self.http = httpx.Client(trust_env=False)
            self._pid = os.getpid()
        service = self.registry.endpoint(ref.service or "")
        decision = self.registry.select_instance(service, ctx.correlation_id)
        lease = self._admitted(service, decision)
        ok = False
        try:
            url, body, headers, timeout = self._request(service, lease, ref.operation or "", ctx)
            started = time.perf_counter()
            try:
                response = self.http.post(url, content=orjson.dumps(body), headers=headers, timeout=timeout)
            except httpx.TimeoutException:
                raise self._timed_out(service, lease, ref, timeout)
            except httpx.HTTPError as exc:
                raise self._unreachable(service, lease, ref, exc)
            result = self._result(service, lease, ref, response.status_code, response.content, started)
            ok = True
            return result
        except NonRetryableStepError:
            ok = True  # the service answered and refused: it works, so a success for the breaker
            raise
        finally:
            self.registry.release(service, lease, ok)
            self._count(service.name, "ok" if ok else "failed")

    async def call_async(self, ref: ActionRef, ctx: StepContext) -> Any:
        """A call on the worker's event loop: many in flight at once, each cancelled cleanly (the request
        aborted, the breaker told it failed) when its attempt is stopped."""
        service = self.registry.endpoint(ref.service or "")
        decision = await self.registry.select_instance_async(service, ctx.correlation_id)
        lease = self._admitted(service, decision)
        ok = False
        try:
            url, body, headers, timeout = self._request(service, lease, ref.operation or "", ctx)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    response = await self.async_http.post(url, orjson.dumps(body), headers)
                status, content = response.status, response.body
            except TimeoutError:
                raise self._timed_out(service, lease, ref, timeout)
            except HttpError as exc:
                raise self._unreachable(service, lease, ref, exc)
            result = self._result(service, lease, ref, status, content, started)
            ok = True
            return result
        except NonRetryableStepError:
            ok = True
            raise
        finally:
            # Sent, not awaited: even a cancelled attempt reports its outcome and frees its slot.
            self.registry.release_soon(service, lease, ok)
            self._count(service.name, "ok" if ok else "failed")

    @property
    def async_http(self) -> HttpClient:
        """The worker's HTTP client (keep-alive connections per instance, made on its event loop)."""
        if self._async_http is None:
            self._async_http = HttpClient()
        return self._async_http

    def _admitted(self, service: ServiceEndpoint, decision: Lease | Refusal) -> Lease:
        if isinstance(decision, Lease):
            return decision
        self._count(service.name, "refused")
        if decision.reason.startswith("no healthy"):
            raise ServiceUnavailable(f"service {service.name}: no healthy instance")
        raise CircuitOpenError(
            f"service {service.name}: circuit breaker {decision.state.value} ({decision.reason}); not called",
            decision.retry_after,
        )

    def _count(self, service: str, outcome: str) -> None:
        if self.stats is not None:
            self.stats.incr(SERVICE_CALLS, (service, outcome))

    @staticmethod
    def _request(
        service: ServiceEndpoint, lease: Lease, operation: str, ctx: StepContext
    ) -> tuple[str, dict[str, Any], dict[str, str], float]:
        url = lease.url + service.path(operation)
        # A little under the attempt's budget, so the client times out cleanly before the attempt does.
        budget = ctx.timeout * 0.95 if ctx.timeout else None
        timeout = max(min(t for t in (service.timeout, budget, 30.0) if t), 0.001)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": ctx.idempotency_key,
            "X-Correlation-ID": ctx.correlation_id,
            "X-Workflow-ID": ctx.workflow_id,
            "traceparent": traceparent(ctx),
        }
        body = {"workflow_id": ctx.workflow_id, "step_id": ctx.step_id, "input": ctx.input, "output": ctx.output}
        return url, body, headers, timeout

    @staticmethod
    def _timed_out(service: ServiceEndpoint, lease: Lease, ref: ActionRef, timeout: float) -> StepError:
        # The request may have been applied: the outcome is unknown, not failed.
        return StepTimeout(f"{service.name}.{ref.operation} on {lease.instance_id}: no response within {timeout:.3f}s")

    @staticmethod
    def _unreachable(service: ServiceEndpoint, lease: Lease, ref: ActionRef, exc: Exception) -> StepError:
        where = f"{service.name}.{ref.operation} on {lease.instance_id}"
        return StepError(f"{where}: {type(exc).__name__}: {exc}", error_type="ServiceConnectionError")

    @staticmethod
    def _result(
        service: ServiceEndpoint, lease: Lease, ref: ActionRef, status: int, content: bytes, started: float
    ) -> Any:
        if status < 300:
            return _body(content)
        elapsed_ms = (time.perf_counter() - started) * 1000
        where = f"{service.name}.{ref.operation} on {lease.instance_id}"
        detail = f"{where}: HTTP {status} after {elapsed_ms:.1f} ms: {_snippet(content, status)}"
        if status >= 500 or status in RETRYABLE_4XX:
            raise StepError(detail, error_type=f"HTTP{status}")
        raise NonRetryableStepError(detail, error_type=f"HTTP{status}")


def traceparent(ctx: StepContext) -> str:
    """W3C trace context: the saga's trace id and a new span id for this call (not security material:
    a fast PRNG will do, without a system call per call)."""
    trace_id = str(ctx.tracing.get("trace_id") or "").lower()
    if len(trace_id) != 32:
        trace_id = f"{random.getrandbits(128):032x}"
    return f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-01"


def _body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", "replace")


def _snippet(content: bytes, status: int) -> str:
    text = content.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:300] or f"HTTP {status}"
