"""Waveless order release: the controller's status, mode, pins, and orders submitted to the intake."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from api.schemas.base import JSONObject, Model


class WavelessStatus(BaseModel):
    available: bool = Field(description="A release controller has reported (a worker leads it)")
    mode: str | None = Field(description="fixed | waveless")
    definition: str | None = Field(description="The saga each released order starts")
    leader: str | None = Field(description="Worker running the controller")
    batch_size: float | None = Field(description="Orders per release, at most")
    rate: float | None = Field(description="Orders released per second, at most")
    limit: str | None = Field(description="What held the last release back: batch | rate | headroom | wave | idle")
    queue_depth: float | None = Field(description="Orders accepted and not yet released")
    in_flight: float | None
    utilization: float | None
    target_utilization: float | None
    pinned_batch: float | None
    pinned_rate: float | None
    last_kind: str | None = Field(description="What the last adjustment did: grow | shrink | hold | pinned | fixed")
    last_reason: str | None = Field(description="Why")
    last_error: str | None
    updated_at: float | None
    last_decision: JSONObject | None
    decisions: list[JSONObject] = Field(description="Newest first")
    state: JSONObject = Field(description="Every field of the controller's state (see `wes waveless status`)")


class WavelessModeRequest(Model):
    mode: Literal["waveless", "fixed"]
    wave_size: StrictInt | None = Field(default=None, ge=1, le=100_000, description="fixed: orders per wave")
    wave_interval_seconds: StrictFloat | None = Field(default=None, gt=0, le=3600, description="fixed: seconds between")


class WavelessPin(Model):
    """Exactly one of the two."""

    batch_size: StrictInt | None = Field(default=None, ge=1, le=100_000)
    rate: StrictFloat | None = Field(default=None, gt=0, le=100_000)


class OrdersSubmit(Model):
    orders: list[JSONObject] = Field(min_length=1, max_length=1000, description="Each the saga's input")


class OrderAccepted(BaseModel):
    order_id: str
    entry_id: str


class OrdersAccepted(BaseModel):
    accepted: list[OrderAccepted]
