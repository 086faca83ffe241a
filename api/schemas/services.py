"""Service endpoints: instances and health, circuit breakers, the simulated services' chaos knobs."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from api.schemas.base import JSONObject, Model


class InstanceHealth(BaseModel):
    status: Literal["HEALTHY", "UNHEALTHY", "UNKNOWN"]
    checked_at: float | None
    latency_ms: float | None
    error: str | None


class InstanceView(BaseModel):
    id: str
    url: str
    capacity: int
    in_flight: int
    utilization: float = Field(description="In flight / capacity (0..1+)")
    healthy: bool
    health: InstanceHealth


class BreakerView(BaseModel):
    service: str
    state: Literal["CLOSED", "OPEN", "HALF_OPEN"]
    forced: Literal["OPEN", "CLOSED"] | None
    open_until: float | None
    trips: int
    calls: int
    failures: int
    window_calls: int
    window_failure_rate: float
    policy: JSONObject


class ServiceView(BaseModel):
    name: str
    instances: list[InstanceView]
    utilization: float = Field(description="Calls in flight / capacity over healthy instances")
    healthy_instances: int
    breaker: BreakerView
    config: JSONObject


class BreakerAction(StrEnum):
    FORCE_OPEN = "force-open"
    FORCE_CLOSED = "force-closed"
    RESET = "reset"


class Latency(Model):
    mean: StrictFloat = Field(ge=0)
    p99: StrictFloat = Field(ge=0)


class ChaosKnobs(Model):
    """Partial update of a simulated service's chaos knobs (demo only)."""

    instance: str | None = Field(default=None, description="Only this instance (default: all)")
    error_rate: StrictFloat | None = Field(default=None, ge=0, le=1)
    error_status: StrictInt | None = Field(default=None, ge=400, le=599)
    latency_ms: Latency | None = None
    down: StrictBool | None = None
    health_delay_s: StrictFloat | None = Field(default=None, ge=0, le=60)


class ChaosInstance(Model):
    instance: str | None = None


class ChaosView(BaseModel):
    service: str
    instances: dict[str, JSONObject | None] = Field(description="Instance id -> knobs in force (null: unreachable)")


class ServicesApplied(BaseModel):
    services: list[str]
