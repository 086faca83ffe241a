"""Liveness, readiness, the caller's info and the live workers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from api.auth import Role


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    redis: bool
    workers: int
    detail: str


class WorkerView(BaseModel):
    name: str
    last_seen: float


class ApiInfo(BaseModel):
    version: str
    api: str
    key_id: str
    role: Role
    features: dict[str, bool]
    limits: dict[str, float]
    server_time: float
