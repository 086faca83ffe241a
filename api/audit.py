"""The audit log: every control action (each non-GET request under /api/v1 by a known key) is one
entry of a capped stream (``engine.AuditStore``): who (key id, role, key name; never the key), what
(action, method, path, target ids, parameters), when, and the result (status, error code and message).

The entry is written before the response's last byte is sent, so a client that got its answer finds
the action in the log.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal
from engine import AuditStore

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_FIELDS = frozenset({"target", "params"})
MAX_TARGETS = 1000
SCAN_FACTOR = 20
"""A filtered read scans at most this many entries per entry asked for."""


def note(request: Request, *, target: Any = None, **params: Any) -> None:
    """What a control route acted on, for its audit entry (path parameters are the default target)."""
    if target is not None:
        request.state.audit_target = target
    if params:
        request.state.audit_params = {k: v for k, v in params.items() if v is not None}


class AuditLog:
    def __init__(self, store: AuditStore, maxlen: int):
        self.store, self.maxlen = store, maxlen

    async def append(self, entry: dict[str, Any]) -> str:
        fields = {k: json.dumps(v, default=str) if k in JSON_FIELDS else str(v) for k, v in entry.items()}
        return await self.store.append(fields, self.maxlen)

    def read(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        key_id: str | None = None,
        action: str | None = None,
        target: str | None = None,
        failed_only: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor is the id of the last entry returned (exclusive)."""
        out: list[dict[str, Any]] = []
        cursor = before or None
        scanned = 0
        budget = limit * SCAN_FACTOR
        last_id: str | None = None
        while len(out) < limit and scanned < budget:
            rows = self.store.before(cursor, min(500, budget - scanned))
            if not rows:
                last_id = None
                break
            for entry_id, fields in rows:
                scanned += 1
                last_id = entry_id
                item = decode(entry_id, fields)
                if _matches(item, key_id, action, target, failed_only):
                    out.append(item)
                    if len(out) == limit:
                        break
            cursor = last_id
        more = last_id is not None and bool(self.store.before(last_id, 1))
        return out, last_id if more else None

    def size(self) -> int:
        return self.store.size()


def decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    def js(name: str, default: Any) -> Any:
        raw = fields.get(name)
        return json.loads(raw) if raw else default

    return {
        "id": entry_id,
        "at": float(fields.get("at", 0) or 0),
        "key_id": fields.get("key_id", ""),
        "role": fields.get("role", ""),
        "key_name": fields.get("key_name", ""),
        "action": fields.get("action", ""),
        "method": fields.get("method", ""),
        "path": fields.get("path", ""),
        "target": js("target", None),
        "params": js("params", {}),
        "status": int(fields.get("status", 0) or 0),
        "ok": 200 <= int(fields.get("status", 0) or 0) < 400,
        "error_code": fields.get("error_code") or None,
        "error": fields.get("error") or None,
    }


def _matches(item: dict[str, Any], key_id: str | None, action: str | None, target: str | None, failed: bool) -> bool:
    if key_id and item["key_id"] != key_id:
        return False
    if action and item["action"] != action:
        return False
    if failed and item["ok"]:
        return False
    if target:
        t = item["target"]
        values = t.values() if isinstance(t, dict) else t if isinstance(t, list) else [t]
        if target not in {str(v) for v in values}:
            return False
    return True


class AuditMiddleware:
    """Pure ASGI: records control requests after the route ran, before the response completes."""

    def __init__(self, app: ASGIApp, prefix: str = "/api/v1"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        status = 0
        recorded = False

        async def send_recorded(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not recorded:
                recorded = True
                await self._record(scope, status)
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not recorded:
                recorded = True
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        if principal is None:
            return  # unauthenticated requests never reach an action
        route = scope.get("route")
        problem = state.get("problem") or {}
        target = state.get("audit_target", scope.get("path_params") or None)
        if isinstance(target, list) and len(target) > MAX_TARGETS:
            target = [*target[:MAX_TARGETS], f"... {len(target) - MAX_TARGETS} more"]
        entry = {
            "at": repr(time.time()),
            "key_id": principal.key_id,
            "role": principal.role.value,
            "key_name": principal.name,
            "action": getattr(route, "name", "") or f"{scope['method']} {scope['path']}",
            "method": scope["method"],
            "path": scope["path"],
            "target": target,
            "params": state.get("audit_params", {}),
            "status": str(status),
            "error_code": problem.get("code", "") if status >= 400 else "",
            "error": problem.get("detail", "") if status >= 400 else "",
        }
        audit: AuditLog = scope["app"].state.api.audit
        await audit.append(entry)
