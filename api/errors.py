"""Every error the API returns is an RFC 9457 problem (``application/problem+json``), mapped here only.

========================================  ======  =====================
raised                                    status  ``code``
========================================  ======  =====================
NotFound (workflow, definition, service)  404     not-found
IllegalTransition                         409     illegal-transition
ConcurrencyConflict                       409     concurrency-conflict
ConsistencyUnavailable                    409     consistency-unavailable
DefinitionError                           422     invalid-definition
InputValidationError                      422     invalid-input
request validation (pydantic)             422     invalid-request
malformed JSON body                       400     malformed-json
missing / unknown API key                 401     unauthenticated
role too low                              403     forbidden
rate limit                                429     rate-limited
Redis unreachable, ConfigurationError     503     unavailable
anything else                             500     internal (no details)
========================================  ======  =====================

ConsistencyUnavailable is a 409: the request is well formed, the server's state (its fsync policy)
cannot honour it. Malformed JSON is a 400 (nothing could be parsed), every well formed but invalid
request a 422.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import (
    ConcurrencyConflict,
    ConfigurationError,
    ConsistencyUnavailable,
    DefinitionError,
    EngineError,
    IllegalTransition,
    InputValidationError,
    NotFound,
    StoreError,
    StoreUnavailable,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """An error raised by the API itself (auth, rate limit, a disabled feature)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = extra


def unauthenticated(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="wes"'})


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, "forbidden", detail)


def not_found(detail: str) -> ApiProblem:
    return ApiProblem(404, "not-found", detail)


def conflict(detail: str) -> ApiProblem:
    return ApiProblem(409, "conflict", detail)


def unavailable(detail: str, retry_after: int = 1) -> ApiProblem:
    return ApiProblem(503, "unavailable", detail, headers={"Retry-After": str(retry_after)})


_ENGINE_ERRORS: list[tuple[type[Exception], int, str]] = [
    (NotFound, 404, "not-found"),
    (IllegalTransition, 409, "illegal-transition"),
    (ConcurrencyConflict, 409, "concurrency-conflict"),
    (ConsistencyUnavailable, 409, "consistency-unavailable"),
    (DefinitionError, 422, "invalid-definition"),
    (InputValidationError, 422, "invalid-input"),
    (ConfigurationError, 503, "unavailable"),
]


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Around parsing a client's free-form JSON: a shape the parser did not expect is still a 422."""
    try:
        yield
    except (EngineError, ApiProblem):
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise ApiProblem(422, "invalid-request", f"cannot read {what}: {type(exc).__name__}: {exc}")


def to_problem(exc: BaseException) -> ApiProblem:
    """The problem an exception becomes (also used by bulk actions for each item)."""
    if isinstance(exc, ApiProblem):
        return exc
    for cls, status, code in _ENGINE_ERRORS:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, DefinitionError | InputValidationError):
                extra["problems"] = list(exc.problems)
            if isinstance(exc, IllegalTransition):
                extra.update(current=exc.current, target=exc.target)
            return ApiProblem(status, code, str(exc), **extra)
    if isinstance(exc, StoreUnavailable):
        return unavailable(f"Redis is unreachable: {exc}")
    if isinstance(exc, EngineError):
        return ApiProblem(422, "engine-error", str(exc))
    return ApiProblem(500, "internal", "internal error; the server log has the details")


def problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    body = {
        "type": f"urn:wes:problem:{problem.code}",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        "code": problem.code,
        **problem.extra,
    }
    request.state.problem = {"status": problem.status, "code": problem.code, "detail": problem.detail}
    return JSONResponse(
        jsonable_encoder(body), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        first = next(e for e in errors if e["type"] == "json_invalid")
        return problem_response(
            request, ApiProblem(400, "malformed-json", f"the body is not valid JSON: {first['msg']}")
        )
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return problem_response(request, ApiProblem(422, "invalid-request", detail, errors=errors))


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    return problem_response(request, ApiProblem(exc.status_code, code, detail, headers=exc.headers))


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    problem = to_problem(exc)
    if problem.status >= 500 and not isinstance(exc, ApiProblem):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(request, problem)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(EngineError, _on_problem)
    app.add_exception_handler(StoreError, _on_problem)
    app.add_exception_handler(Exception, _on_problem)


# ---------------------------------------------------------------------------- OpenAPI
_DESCRIPTIONS = {
    400: "Malformed JSON body",
    401: "No API key, or an unknown one",
    403: "The API key's role does not allow this",
    404: "Unknown workflow, definition, service or key",
    409: "Illegal transition, or a conflict with the current state",
    422: "Invalid input (precise messages in `detail`, `problems` or `errors`)",
    429: "Rate limit of control requests exceeded (see Retry-After)",
    502: "A simulated service instance did not answer (chaos knobs)",
    503: "Redis unreachable, or a feature not available on this server",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these problem statuses (the schema is added by ``main``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[status] = entry
    return out


READ = problems(401, 403, 422)
CONTROL = problems(400, 401, 403, 404, 409, 422, 429)
