"""API keys and the audit log of control actions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.auth import Role
from api.schemas.base import JSONObject, Model


class KeyCreate(Model):
    role: Role
    name: str = Field(min_length=1, max_length=100)


class KeyView(BaseModel):
    key_id: str
    role: Role
    name: str
    source: Literal["env", "file", "redis"]
    created_at: float | None
    created_by: str | None


class KeyCreated(KeyView):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


class AuditEntry(BaseModel):
    id: str
    at: float
    key_id: str
    role: str
    key_name: str
    action: str
    method: str
    path: str
    target: Any = None
    params: JSONObject
    status: int
    ok: bool
    error_code: str | None
    error: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None
