"""Waveless order release: status (mode, batch size, rate, queue depth, last decision and why),
switch mode, pin / unpin the batch size or rate, and submit orders to the intake."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api import audit
from api.deps import Operator, ServicesDep, Viewer
from api.errors import CONTROL, READ, ApiProblem
from api.schemas.waveless import OrdersAccepted, OrdersSubmit, WavelessModeRequest, WavelessPin, WavelessStatus
from engine import ProcessingStrategy, WavelessProcessingService

router = APIRouter(prefix="/waveless", tags=["waveless"])


def controller(services: ServicesDep) -> WavelessProcessingService:
    return services.waveless


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _status(raw: dict[str, Any]) -> dict[str, Any]:
    pins = raw.get("pins") or {}
    numbers = ("batch_size", "rate", "queue_depth", "in_flight", "utilization", "target_utilization", "updated_at")
    texts = ("mode", "definition", "leader", "limit", "last_kind", "last_reason", "last_error")
    decisions = [d for d in raw.get("decisions") or [] if isinstance(d, dict)]
    return {
        "available": _num(raw.get("updated_at")) is not None,
        **{name: _num(raw.get(name)) for name in numbers},
        **{name: _text(raw.get(name)) for name in texts},
        "pinned_batch": _num(pins.get("batch")),
        "pinned_rate": _num(pins.get("rate")),
        "last_decision": decisions[0] if decisions else None,
        "decisions": decisions,
        "state": raw,
    }


def _operator_error(exc: ValueError) -> ApiProblem:
    return ApiProblem(422, "invalid-request", str(exc))


@router.get("", response_model=WavelessStatus, responses=READ, summary="The release controller's state")
def waveless_status(services: ServicesDep, _: Viewer, decisions: Annotated[int, Query(ge=0, le=100)] = 10) -> Any:
    return _status(controller(services).status(decisions=decisions))


@router.put("/mode", response_model=WavelessStatus, responses=CONTROL, summary="Switch fixed waves / waveless")
def set_mode(body: WavelessModeRequest, request: Request, services: ServicesDep, principal: Operator) -> Any:
    audit.note(request, target="waveless", **body.model_dump(exclude_none=True))
    try:
        strategy = ProcessingStrategy.parse(body.mode, body.wave_size, body.wave_interval_seconds)
        return _status(controller(services).enable_waveless_mode(strategy, by=principal.key_id))
    except ValueError as exc:
        raise _operator_error(exc)


@router.put("/pin", response_model=WavelessStatus, responses=CONTROL, summary="Pin the batch size or the rate")
def pin(body: WavelessPin, request: Request, services: ServicesDep, principal: Operator) -> Any:
    audit.note(request, target="waveless", **body.model_dump(exclude_none=True))
    try:
        return _status(controller(services).pin(batch=body.batch_size, rate=body.rate, by=principal.key_id))
    except ValueError as exc:
        raise _operator_error(exc)


@router.delete("/pin", response_model=WavelessStatus, responses=CONTROL, summary="Unpin: adaptive again")
def unpin(request: Request, services: ServicesDep, principal: Operator) -> Any:
    audit.note(request, target="waveless")
    return _status(controller(services).unpin(by=principal.key_id))


@router.post(
    "/orders", response_model=OrdersAccepted, responses=CONTROL, summary="Accept orders on the intake for release"
)
def submit_orders(body: OrdersSubmit, request: Request, services: ServicesDep, _: Operator) -> Any:
    accepted = controller(services).submit(body.orders)
    audit.note(request, target=[a["order_id"] for a in accepted])
    return {"accepted": accepted}
