"""The control API: ``create_app(settings)`` (``uvicorn api.main:create_app --factory``).

Resources under ``/api/v1``; ``/healthz``, ``/readyz`` and ``/metrics`` at the root. Every error is
``application/problem+json`` (``api.errors``); every control request is rate limited per key and
audited (``api.ratelimit``, ``api.audit``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from api import errors
from api.audit import AuditLog, AuditMiddleware
from api.auth import KeyStore
from api.deps import Services, strict_query
from api.observability import VERSION, MetricsMiddleware, metrics_registry
from api.operations import OperationIndex
from api.ratelimit import RateLimiter
from api.routes import audit, definitions, events, health, keys, services, sla, waveless, workflows
from api.schemas.base import Problem
from api.settings import ApiSettings
from engine import ApiStores, EngineClient

PREFIX = "/api/v1"
log = logging.getLogger(__name__)

DESCRIPTION = """Control API of the WES orchestration engine.

**Auth**: `Authorization: Bearer <API key>`. Roles: *viewer* reads everything but keys and the audit
log; *operator* also controls workflows, breakers, waveless release and chaos knobs, and reads the
audit log; *admin* also manages definitions, service endpoints and API keys. No key or an unknown key:
401; a role too low: 403.

**Errors** are RFC 9457 problems (`application/problem+json`) with a stable `code`: 404 unknown id,
409 illegal transition, 422 invalid input (with `problems` or `errors`), 400 malformed JSON, 429 rate
limited (with `Retry-After`).

**Control requests** (every non-GET) are rate limited per key and written to the audit log.

**Times** are Unix epoch seconds.
"""


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def build_services(settings: ApiSettings) -> Services:
    engine = EngineClient(settings.engine)
    stores = ApiStores(engine.engine.stores)
    registry, metrics = metrics_registry(engine, settings.metrics_engine)
    return Services(
        settings=settings,
        engine=engine,
        stores=stores,
        keystore=KeyStore(stores.api_keys, settings),
        limiter=RateLimiter(stores.rate_limits, settings.rate_limit_per_second, settings.rate_limit_burst),
        audit=AuditLog(stores.audit, settings.audit_maxlen),
        waveless=engine.engine.waveless(name="api"),
        registry=registry,
        metrics=metrics,
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    state = build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.stores.aclose()
        try:
            state.engine.flush_stats()
        except Exception as exc:  # Redis gone at shutdown: the last second of start latencies is lost
            log.warning("flushing stats at shutdown failed: %s", exc)

    app = FastAPI(
        title="WES Orchestration Engine",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.api = state
    errors.install(app)
    app.add_middleware(AuditMiddleware, prefix=PREFIX)
    app.add_middleware(MetricsMiddleware)

    v1 = APIRouter(prefix=PREFIX, dependencies=[Depends(strict_query)])
    for module in (workflows, definitions, services, waveless, sla, events, keys, audit):
        v1.include_router(module.router)
    v1.include_router(health.router)
    app.include_router(v1)
    app.include_router(health.root)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.operations = OperationIndex(app.openapi())
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
    return app.openapi_schema
