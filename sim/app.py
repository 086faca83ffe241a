"""The FastAPI app of one instance of one simulated service (see :func:`create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from sim import services as svc
from sim.chaos import Chaos, ChaosError
from sim.store import ServiceStore, decode_record, encode_record

DUPLICATE_WAIT_S = 10.0
"""A duplicate of a request still in progress waits this long for the first one's response."""
DUPLICATE_POLL_S = 0.01
REQUEST_LOG = 1000
"""Operation calls remembered per instance (``GET /_sim/requests``)."""
REDIS_TIMEOUT_S = 5.0


@dataclass
class OpStats:
    calls: int = 0
    errors_injected: int = 0
    applied: int = 0
    replayed: int = 0
    refused: int = 0
    in_flight: int = 0


class SimState:
    def __init__(self, service: str, instance_id: str, store: ServiceStore):
        self.service = service
        self.instance_id = instance_id
        self.store = store
        self.chaos = Chaos()
        self.rng = random.Random()
        self.stats = {op: OpStats() for op in svc.SERVICES[service]}
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.stats.values())

    def reset_stats(self) -> None:
        self.stats = {op: OpStats() for op in self.stats}
        self.requests.clear()


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class DownGuard:
    """While the ``down`` knob is set, every request except ``/_chaos*`` gets 503 at once."""

    def __init__(self, app: Any, state: SimState):
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.state.chaos.down and not scope["path"].startswith("/_chaos"):
            response = error(503, "down", f"instance {self.state.instance_id} is down (chaos knob 'down')")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.response = error(status, code, message)


@dataclass
class Call:
    """A parsed operation call."""

    key: str
    workflow_id: str
    step_id: str
    input: dict[str, Any]
    output: Any


async def parse_call(request: Request) -> Call:
    key = request.headers.get("idempotency-key", "")
    if not key:
        raise BadRequest(400, "missing_idempotency_key", "the Idempotency-Key header is required")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest(400, "invalid_json", "the body must be a JSON object")
    if not isinstance(body, dict):
        raise BadRequest(400, "invalid_body", "the body must be a JSON object")
    problems = [f"{name} must be a non-empty string" for name in ("workflow_id", "step_id") if not body.get(name)]
    problems += [
        f"{name} must be a string" for name in ("workflow_id", "step_id") if not isinstance(body.get(name, ""), str)
    ]
    data = body.get("input")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append("input must be a JSON object")
    if problems:
        raise BadRequest(400, "invalid_body", "; ".join(dict.fromkeys(problems)))
    return Call(key, body["workflow_id"], body["step_id"], data, body.get("output"))


def create_app(
    service: str,
    instance_id: str,
    redis_url: str,
    prefix: str = "sim",
    parent_pid: int | None = None,
) -> FastAPI:
    """One instance of `service`; its shared state lives in Redis under `prefix`."""
    if service not in svc.SERVICES:
        raise ValueError(f"unknown service {service!r} (known: {', '.join(svc.SERVICES)})")
    client = aredis.from_url(
        redis_url,
        decode_responses=True,
        protocol=2,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    state = SimState(service, instance_id, ServiceStore(client, prefix, service))
    forward, undo = svc.SERVICES[service]

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watchdog = asyncio.create_task(_watch_parent(parent_pid)) if parent_pid else None
        try:
            yield
        finally:
            if watchdog:
                watchdog.cancel()
            await client.aclose()

    app = FastAPI(title=f"sim {service}", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.sim = state
    app.add_middleware(DownGuard, state=state)

    @app.exception_handler(RedisError)
    async def redis_failed(_request: Request, exc: RedisError) -> JSONResponse:
        return error(503, "redis_unavailable", f"redis: {type(exc).__name__}: {exc}")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        if state.chaos.health_delay_s:
            await asyncio.sleep(state.chaos.health_delay_s)
        return {"status": "ok", "service": service, "instance": instance_id, "in_flight": state.in_flight}

    @app.get("/_chaos")
    async def get_chaos() -> dict[str, Any]:
        return state.chaos.as_dict()

    @app.post("/_chaos")
    async def set_chaos(request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            return error(422, "invalid_chaos", "the body must be a JSON object of knobs")
        try:
            state.chaos.update(raw)
        except ChaosError as exc:
            return error(422, "invalid_chaos", str(exc), problems=exc.problems)
        return JSONResponse(state.chaos.as_dict())

    @app.post("/_chaos/reset")
    async def reset_chaos() -> dict[str, Any]:
        state.chaos = Chaos()
        return state.chaos.as_dict()

    @app.get("/_sim/effects")
    async def get_effects() -> dict[str, Any]:
        effects, totals = await state.store.effects()
        return {"service": service, "effects": effects, "totals": totals}

    @app.post("/_sim/reset")
    async def reset() -> dict[str, Any]:
        deleted = await state.store.reset()
        state.reset_stats()
        return {"service": service, "reset": True, "keys_deleted": deleted}

    @app.get("/_sim/stats")
    async def get_stats() -> dict[str, Any]:
        ops = {op: asdict(s) for op, s in state.stats.items()}
        return {
            "service": service,
            "instance": instance_id,
            "calls": sum(s["calls"] for s in ops.values()),
            "errors_injected": sum(s["errors_injected"] for s in ops.values()),
            "in_flight": state.in_flight,
            "operations": ops,
        }

    @app.get("/_sim/requests")
    async def get_requests() -> dict[str, Any]:
        return {"service": service, "instance": instance_id, "requests": list(state.requests)}

    @app.get("/_sim/stock")
    async def get_stock() -> dict[str, Any]:
        return {"service": service, "stock": await state.store.stock(), "default": svc.DEFAULT_STOCK}

    @app.post("/_sim/stock")
    async def set_stock(request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            raw = None
        levels = raw.get("stock") if isinstance(raw, dict) and "stock" in raw else None
        if isinstance(raw, dict) and "sku" in raw:
            levels = {raw["sku"]: raw.get("quantity")}
        valid = isinstance(levels, dict) and all(
            isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in levels.items()
        )
        if not valid:
            return error(
                422,
                "invalid_stock",
                'the body must be {"sku": str, "quantity": int >= 0} or {"stock": {sku: int >= 0, ...}}',
            )
        await state.store.set_stock(levels)
        return JSONResponse({"service": service, "stock": await state.store.stock(), "default": svc.DEFAULT_STOCK})

    @app.post("/{operation}")
    async def operate(operation: str, request: Request) -> Response:
        if operation not in (forward, undo):
            return error(
                404, "unknown_operation", f"{service} has no operation {operation!r} (operations: {forward}, {undo})"
            )
        stats = state.stats[operation]
        stats.calls += 1
        stats.in_flight += 1
        entry: dict[str, Any] = {
            "operation": operation,
            "idempotency_key": request.headers.get("idempotency-key"),
            "correlation_id": request.headers.get("x-correlation-id"),
            "traceparent": request.headers.get("traceparent"),
            "at": time.time(),
        }
        response: Response | None = None
        try:
            response = await _operate(state, operation, request, stats, entry)
            return response
        finally:
            stats.in_flight -= 1
            entry["status"] = response.status_code if response is not None else 500
            state.requests.append(entry)

    return app


async def _operate(state: SimState, operation: str, request: Request, stats: OpStats, entry: dict) -> Response:
    try:
        call = await parse_call(request)
    except BadRequest as exc:
        entry["outcome"] = "bad_request"
        return exc.response
    entry.update(workflow_id=call.workflow_id, step_id=call.step_id)
    headers = {"X-Sim-Instance": state.instance_id}
    if entry["correlation_id"]:
        headers["X-Correlation-ID"] = entry["correlation_id"]

    chaos = state.chaos
    if chaos.error_rate and state.rng.random() < chaos.error_rate:
        stats.errors_injected += 1
        entry["outcome"] = "injected"
        response = error(
            chaos.error_status,
            "injected",
            f"chaos: injected {chaos.error_status} (error_rate {chaos.error_rate:g}) on {state.instance_id}",
        )
        response.headers.update(headers)
        return response

    store = state.store
    field = f"{operation}|{call.key}"

    def replay(record: str) -> Response:
        stats.replayed += 1
        entry["outcome"] = "replayed"
        status, body = decode_record(record)
        return Response(body, status, {**headers, "Idempotent-Replayed": "true"}, media_type="application/json")

    token, record = await _acquire(store, field)
    if record is not None:
        return replay(record)
    if token is None:
        entry["outcome"] = "in_progress"
        response = error(
            503,
            "in_progress",
            f"a request with Idempotency-Key {call.key!r} is still in progress after {DUPLICATE_WAIT_S:g} s",
        )
        response.headers.update({**headers, "Retry-After": "1"})
        return response
    renewer = asyncio.create_task(_renew(store, field, token))
    try:
        delay = chaos.latency_ms.sample_s(state.rng)
        if delay:
            await asyncio.sleep(delay)

        def refuse(status: int, code: str, message: str, **extra: Any) -> Response:
            stats.refused += 1
            entry["outcome"] = code
            response = error(status, code, message, **extra)
            response.headers.update(headers)
            return response

        if svc.refused(operation, call.input):
            return refuse(422, "refused", f"{state.service} refuses {operation} (input.refuse)")
        forward = svc.SERVICES[state.service][0]
        mode, sku, quantity, hold_id, forward_field = "", "", 0, "", ""
        try:
            if operation == forward:
                body = svc.forward_result(state.service, operation, call.key, call.input)
                forward_field = f"{call.workflow_id}|{call.step_id}"
                if operation == "reserve":
                    mode, sku, quantity, hold_id = "hold", body["sku"], body["quantity"], body["reservation_id"]
            else:
                of = svc.id_in(state.service, call.output)
                if of is None:  # no usable output (e.g. the forward timed out): did this service apply it?
                    recorded = await store.forward_of(call.workflow_id, call.step_id)
                    of = svc.id_in(state.service, json.loads(recorded)) if recorded else None
                body = svc.undo_result(state.service, of)
                if operation == "release":
                    mode, hold_id = "unhold", of or ""
        except svc.InputError as exc:
            return refuse(422, "invalid_input", str(exc))

        body_json = dumps(body)
        applied = await store.apply(
            field, operation, encode_record(200, body_json), forward_field, mode, sku, quantity, hold_id
        )
        if applied.outcome == "insufficient":
            return refuse(
                409,
                "insufficient_stock",
                f"sku {sku!r}: {applied.available} available, {quantity} requested",
                sku=sku,
                available=applied.available,
                requested=quantity,
            )
        if applied.outcome == "replay":
            return replay(applied.record)
        stats.applied += 1
        entry["outcome"] = "applied"
        if chaos.latency_after_apply_ms:
            await asyncio.sleep(chaos.latency_after_apply_ms / 1000)
        return Response(body_json, 200, headers, media_type="application/json")
    finally:
        renewer.cancel()
        with contextlib.suppress(RedisError, asyncio.CancelledError):
            await store.unmark(field, token)


async def _acquire(store: ServiceStore, field: str) -> tuple[str | None, str | None]:
    """(marker token, None) when this request may proceed; (None, stored record) when a response is
    stored (at once, or after waiting for a request in progress); (None, None) after waiting too long."""
    deadline = time.monotonic() + DUPLICATE_WAIT_S
    while True:
        record = await store.stored(field)
        if record is not None:
            return None, record
        token = await store.try_mark(field)
        if token is not None:
            return token, None
        if time.monotonic() >= deadline:
            return None, None
        await asyncio.sleep(DUPLICATE_POLL_S)


async def _renew(store: ServiceStore, field: str, token: str) -> None:
    with contextlib.suppress(RedisError):
        while True:
            await asyncio.sleep(store.MARKER_TTL_MS / 4000)
            await store.renew_mark(field, token)


async def _watch_parent(parent_pid: int) -> None:
    """Stop (SIGTERM to ourselves) when the launching process is gone, so tests never leak servers."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
            return
