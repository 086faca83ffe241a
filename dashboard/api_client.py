"""The dashboard's only way to the engine: the control API over HTTP, with a bearer key.

Every failure is an :class:`ApiError` carrying what an operator should read: the ``detail`` of the
API's ``application/problem+json`` answer, or why the API could not be reached. No Streamlit here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

URL_ENV = "WES_DASHBOARD_API_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
PREFIX = "/api/v1"
TIMEOUT_S = 10.0


def default_url() -> str:
    return os.environ.get(URL_ENV, "").strip() or DEFAULT_URL


class ApiError(Exception):
    """A request that did not succeed: ``status`` is None when the API was not reached at all."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str = "error",
        problem: Mapping[str, Any] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.problem = dict(problem or {})

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def unauthenticated(self) -> bool:
        return self.status == 401

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        return f"{self.detail} (HTTP {self.status}, {self.code})"


_pool: dict[tuple[str, float], httpx.Client] = {}
_pool_lock = threading.Lock()


def _shared_client(base_url: str, timeout: float) -> httpx.Client:
    """One connection pool per API address for the whole process (httpx.Client is thread-safe;
    every Streamlit session runs in its own thread)."""
    key = (base_url, timeout)
    with _pool_lock:
        found = _pool.get(key)
        if found is None or found.is_closed:
            found = _pool[key] = httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)
        return found


def error_from(response: httpx.Response) -> ApiError:
    """The ApiError a non-2xx response becomes: the problem's ``detail`` when it is one."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = body["detail"]
        for item in body.get("problems") or []:
            detail += f"\n- {item}"
        retry = response.headers.get("retry-after")
        if response.status_code == 429 and retry:
            detail += f" (retry after {retry} s)"
        return ApiError(detail, status=response.status_code, code=str(body.get("code") or "error"), problem=body)
    text = response.text.strip()[:300] or response.reason_phrase
    return ApiError(f"{response.request.method} {response.request.url.path}: {text}", status=response.status_code)


class ApiClient:
    """Thin typed access to ``/api/v1``; every method returns the decoded JSON body."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        try:
            if transport is not None:
                self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                          trust_env=False)  # fmt: skip
            else:
                self._http = _shared_client(self.base_url, timeout)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ApiError(f"{base_url!r} is not a valid API address: {exc}")

    # ------------------------------------------------------------------------------ transport
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = self._http.request(method, PREFIX + path, params=query, json=json, headers=self._headers)
        except httpx.TimeoutException as exc:
            raise ApiError(f"the API at {self.base_url} did not answer in time ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            raise ApiError(f"the API at {self.base_url} is unreachable: {type(exc).__name__}: {exc}")
        except (httpx.InvalidURL, ValueError) as exc:
            raise ApiError(f"{self.base_url!r} is not a valid API address: {exc}")
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(f"{method} {path}: the API answered with something that is not JSON",
                               status=response.status_code)  # fmt: skip
        raise error_from(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    # ------------------------------------------------------------------------------ who am I
    def info(self) -> dict[str, Any]:
        """Version, the key's id and role, and the server's features (chaos knobs...)."""
        return self.get("/info")

    # ------------------------------------------------------------------------------ workflows
    def workflows(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        correlation_id: str | None = None,
        requires_attention: bool = False,
        created_before: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        order: str | None = None,
    ) -> dict[str, Any]:
        """A page of workflows, newest first (``order="oldest"``: oldest first; pass the same order
        with the page's ``next_cursor``)."""
        return self.get(
            "/workflows",
            status=status,
            definition=definition,
            correlation_id=correlation_id,
            requires_attention=requires_attention or None,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
            order=order,
        )

    def counts(self) -> dict[str, Any]:
        return self.get("/workflows/counts")

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        return self.get(f"/workflows/{workflow_id}")

    def events(self, workflow_id: str) -> list[dict[str, Any]]:
        return self.get(f"/workflows/{workflow_id}/events")

    def control(self, workflow_id: str, action: str, reason: str | None = None) -> dict[str, Any]:
        """``pause``, ``resume``, ``cancel`` or ``retry-compensation``; returns the workflow after."""
        if action not in CONTROLS:
            raise ValueError(f"unknown control {action!r}")
        body = {"reason": reason} if reason and action in ("pause", "cancel") else None
        return self.post(f"/workflows/{workflow_id}/{action}", json=body)

    def bulk(self, action: str, ids: Sequence[str], reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": action, "ids": list(ids)}
        if reason:
            body["reason"] = reason
        return self.post("/workflows/bulk", json=body)

    # ------------------------------------------------------------------------------ definitions
    def definitions(self) -> list[dict[str, Any]]:
        return self.get("/definitions")

    # ------------------------------------------------------------------------------ services
    def services(self) -> list[dict[str, Any]]:
        return self.get("/services")

    def breaker(self, service: str, action: str) -> dict[str, Any]:
        """``force-open``, ``force-closed`` or ``reset``."""
        return self.post(f"/services/{service}/breaker/{action}")

    def chaos(self, service: str) -> dict[str, Any]:
        return self.get(f"/services/{service}/chaos")

    def set_chaos(self, service: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
        return self.post(f"/services/{service}/chaos", json=dict(knobs))

    def reset_chaos(self, service: str) -> dict[str, Any]:
        return self.post(f"/services/{service}/chaos/reset")

    # ------------------------------------------------------------------------------ waveless
    def waveless(self, decisions: int = 50) -> dict[str, Any]:
        return self.get("/waveless", decisions=decisions)

    def set_mode(
        self, mode: str, wave_size: int | None = None, wave_interval_seconds: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": mode}
        if mode == "fixed":
            if wave_size is not None:
                body["wave_size"] = int(wave_size)
            if wave_interval_seconds is not None:
                body["wave_interval_seconds"] = float(wave_interval_seconds)
        return self.request("PUT", "/waveless/mode", json=body)

    def pin(self, *, batch_size: int | None = None, rate: float | None = None) -> dict[str, Any]:
        body = {"batch_size": int(batch_size)} if batch_size is not None else {"rate": float(rate or 0)}
        return self.request("PUT", "/waveless/pin", json=body)

    def unpin(self) -> dict[str, Any]:
        return self.request("DELETE", "/waveless/pin")

    # ------------------------------------------------------------------------------ SLA and history
    def sla(self, window: int = 300) -> dict[str, Any]:
        return self.get("/sla", window=window)

    def series(
        self, *, since: float | None = None, step: int | None = None, definition: str | None = None
    ) -> dict[str, Any]:
        return self.get("/sla/series", since=since, step=step, definition=definition)


CONTROLS = ("pause", "resume", "cancel", "retry-compensation")


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
