"""Dependencies of the routes: the engine client, the caller's key and role, the rate limit.

``Viewer``, ``Operator`` and ``Admin`` are the role checks (each higher role passes the lower ones);
a route takes one of them as a parameter. A missing or unknown key is a 401, a role too low a 403.
Every non-GET request also takes a token from the key's rate limit bucket (429 when empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from api.audit import READ_METHODS, AuditLog
from api.auth import KeyStore, Principal, Role
from api.errors import ApiProblem, forbidden, unauthenticated
from api.observability import ApiMetrics
from api.ratelimit import RateLimiter
from api.settings import ApiSettings
from engine import ApiStores, EngineClient, WavelessProcessingService


@dataclass
class Services:
    """Everything a request may need, built once per app (``app.state.api``)."""

    settings: ApiSettings
    engine: EngineClient
    stores: ApiStores
    keystore: KeyStore
    limiter: RateLimiter
    audit: AuditLog
    waveless: WavelessProcessingService
    registry: CollectorRegistry
    metrics: ApiMetrics


def get_services(request: Request) -> Services:
    return request.app.state.api


def get_engine(request: Request) -> EngineClient:
    return request.app.state.api.engine


ServicesDep = Annotated[Services, Depends(get_services)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer <key>`. Roles: viewer (read), operator (control "
    "workflows, breakers, chaos), admin (definitions, services, keys).",
)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    principal = await request.app.state.api.keystore.authenticate(credentials.credentials)
    if principal is None:
        raise unauthenticated("unknown or revoked API key")
    request.state.principal = principal
    return principal


def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (``?stauts=RUNNING``) is a 422, not a silently unfiltered answer."""
    op = request.app.state.operations.find(request.method, request.url.path)
    if op is None:
        return
    unknown = sorted(set(request.query_params) - op.query)
    if unknown:
        allowed = ", ".join(sorted(op.query)) or "none"
        raise ApiProblem(
            422, "invalid-request", f"unknown query parameter(s) {unknown} (this endpoint takes: {allowed})"
        )


def require(role: Role):
    async def check(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise forbidden(f"this needs the {role.value} role; key {principal.key_id} is {principal.role.value}")
        reject_unknown_query(request)
        if request.method not in READ_METHODS:
            await request.app.state.api.limiter.take(principal.key_id)
        return principal

    check.__name__ = f"require_{role.value}"
    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


REPEATABLE_QUERY = frozenset({"type"})
"""Query parameters declared as lists (``?type=A&type=B``); tests/api/test_schema.py keeps this equal
to the array parameters of the OpenAPI schema."""


_DECLARED: dict[int, frozenset[str]] = {}


def _declared_query(route: Any) -> frozenset[str] | None:
    """The query parameter names a route declares (its dependencies' included), computed once."""
    if route is None or not hasattr(route, "dependant"):
        return None
    found = _DECLARED.get(id(route))
    if found is None:
        names: set[str] = set()
        pending = [route.dependant]
        while pending:  # the route's own parameters and those of every dependency, recursively
            dependant = pending.pop()
            names.update(f.alias for f in dependant.query_params)
            pending.extend(dependant.dependencies)
        found = _DECLARED[id(route)] = frozenset(names)
    return found


def strict_query(request: Request) -> None:
    """422 for a query parameter the route does not declare (a typo such as ``?stauts=RUNNING`` would
    otherwise be ignored and answer with everything) and for a scalar one given twice (the framework
    would silently keep the last value)."""
    declared = _declared_query(request.scope.get("route"))
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if declared is not None and name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RequestValidationError(
                [
                    {
                        "type": "unknown",
                        "loc": ("query", name),
                        "msg": f"unknown parameter (known: {known})",
                        "input": None,
                    }
                ]
            )
        if name in seen and name not in REPEATABLE_QUERY:
            raise RequestValidationError(
                [{"type": "repeated", "loc": ("query", name), "msg": f"'{name}' may be given once", "input": None}]
            )
        seen.add(name)
