"""Service endpoints: instances with health and utilization, circuit breakers (force open / closed,
reset), configuration (admin), and the simulated services' chaos knobs (demo only)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Path, Request, Response, status

from api import audit
from api.deps import Admin, EngineDep, Operator, ServicesDep, Viewer
from api.errors import CONTROL, READ, ApiProblem, not_found, problems, reading
from api.schemas.services import (
    BreakerAction,
    BreakerView,
    ChaosInstance,
    ChaosKnobs,
    ChaosView,
    ServicesApplied,
    ServiceView,
)
from engine import EngineClient

router = APIRouter(prefix="/services", tags=["services"])
Name = Annotated[str, Path(min_length=1, max_length=64, description="Service name")]
FORCE = {BreakerAction.FORCE_OPEN: "OPEN", BreakerAction.FORCE_CLOSED: "CLOSED", BreakerAction.RESET: "RESET"}
CHAOS_TIMEOUT_S = 3.0


def service_view(engine: EngineClient, name: str) -> dict[str, Any]:
    registry = engine.services
    endpoint = registry.endpoint(name)
    health = registry.health(name)
    loads = {load.id: load for load in registry.loads(endpoint)}
    instances = []
    for i in endpoint.instances:
        load = loads[i.id]
        h = health.get(i.id, {})
        instances.append(
            {
                "id": i.id,
                "url": i.url,
                "capacity": i.capacity,
                "in_flight": load.in_flight,
                "utilization": round(load.utilization, 4),
                "healthy": load.healthy,
                "health": {
                    "status": h.get("status", "UNKNOWN"),
                    "checked_at": h.get("checked_at"),
                    "latency_ms": h.get("latency_ms"),
                    "error": h.get("error") or None,
                },
            }
        )
    healthy = [i for i in instances if i["healthy"]]
    capacity = sum(i["capacity"] for i in healthy)
    return {
        "name": name,
        "instances": instances,
        "utilization": round(sum(i["in_flight"] for i in healthy) / capacity, 4) if capacity else 0.0,
        "healthy_instances": len(healthy),
        "breaker": registry.get_circuit_breaker_state(name),
        "config": endpoint.to_dict(),
    }


@router.get("", response_model=list[ServiceView], responses=READ, summary="Every endpoint with its instances")
def list_services(engine: EngineDep, _: Viewer) -> Any:
    return [service_view(engine, name) for name in sorted(engine.services.endpoints())]


@router.post(
    "",
    response_model=ServicesApplied,
    responses=CONTROL,
    summary="Apply endpoint configuration (the `wes services apply` format, as JSON)",
)
def apply_services(
    body: Annotated[dict[str, Any], Body(description='{"services": {name: {instances: [...], ...}}}')],
    request: Request,
    engine: EngineDep,
    _: Admin,
) -> Any:
    with reading("the service configuration"):
        applied = engine.services.apply(body)
    names = [e.name for e in applied]
    audit.note(request, target=names)
    return {"services": names}


@router.get("/{name}", response_model=ServiceView, responses={**READ, **problems(404)}, summary="One endpoint")
def get_service(name: Name, engine: EngineDep, _: Viewer) -> Any:
    return service_view(engine, name)


@router.delete(
    "/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=CONTROL, summary="Remove an endpoint's configuration"
)
def remove_service(name: Name, request: Request, engine: EngineDep, _: Admin) -> Response:
    audit.note(request, target=name)
    engine.services.remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{name}/breaker", response_model=BreakerView, responses={**READ, **problems(404)}, summary="Circuit breaker"
)
def get_breaker(name: Name, engine: EngineDep, _: Viewer) -> Any:
    return engine.services.get_circuit_breaker_state(name)


@router.post(
    "/{name}/breaker/{action}",
    response_model=BreakerView,
    responses=CONTROL,
    summary="Force the breaker open or closed (until reset), or reset it (closed, window cleared)",
)
def control_breaker(name: Name, action: BreakerAction, request: Request, engine: EngineDep, principal: Operator) -> Any:
    audit.note(request, target=name, action=action.value)
    return engine.services.force(name, FORCE[action], by=principal.key_id)


# ------------------------------------------------------------------------------ chaos (demo)
def _chaos_targets(services: ServicesDep, name: str, instance: str | None) -> list[tuple[str, str]]:
    if not services.settings.chaos_enabled:
        raise ApiProblem(404, "chaos-disabled", "chaos knobs are disabled on this server (demo only: "
                         "WES_API_CHAOS_ENABLED=true, or `wes up --demo`)")  # fmt: skip
    endpoint = services.engine.services.endpoint(name)
    targets = [(i.id, i.url) for i in endpoint.instances if instance in (None, i.id)]
    if not targets:
        raise not_found(f"service {name!r} has no instance {instance!r}")
    return targets


def _sim_call(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        response = httpx.request(method, url, json=body, timeout=CHAOS_TIMEOUT_S, trust_env=False)
    except httpx.HTTPError as exc:
        raise ApiProblem(502, "instance-unreachable", f"{method} {url}: {type(exc).__name__}: {exc}")
    if response.status_code == 422:
        raise ApiProblem(422, "invalid-chaos", response.json().get("message", response.text))
    if not response.is_success:
        raise ApiProblem(502, "instance-error", f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json()


@router.get(
    "/{name}/chaos",
    response_model=ChaosView,
    responses={**READ, **problems(404)},
    summary="Chaos knobs in force on each simulated instance (demo only)",
)
def get_chaos(name: Name, services: ServicesDep, _: Viewer) -> Any:
    out: dict[str, dict[str, Any] | None] = {}
    for iid, url in _chaos_targets(services, name, None):
        try:
            out[iid] = _sim_call("GET", f"{url}/_chaos")
        except ApiProblem:
            out[iid] = None
    return {"service": name, "instances": out}


@router.post(
    "/{name}/chaos",
    response_model=ChaosView,
    responses={**CONTROL, **problems(502)},
    summary="Set chaos knobs (partial update) on a simulated service (demo only)",
)
def set_chaos(name: Name, body: ChaosKnobs, request: Request, services: ServicesDep, _: Operator) -> Any:
    knobs = body.model_dump(exclude_none=True, exclude={"instance"})
    if not knobs:
        raise ApiProblem(422, "invalid-request", "nothing to set: give at least one knob")
    audit.note(request, target=name, instance=body.instance, **knobs)
    targets = _chaos_targets(services, name, body.instance)
    return {"service": name, "instances": {iid: _sim_call("POST", f"{url}/_chaos", knobs) for iid, url in targets}}


@router.post(
    "/{name}/chaos/reset",
    response_model=ChaosView,
    responses={**CONTROL, **problems(502)},
    summary="Back to no chaos (demo only)",
)
def reset_chaos(
    name: Name,
    request: Request,
    services: ServicesDep,
    _: Operator,
    body: Annotated[ChaosInstance | None, Body()] = None,
) -> Any:
    instance = body.instance if body else None
    audit.note(request, target=name, instance=instance)
    targets = _chaos_targets(services, name, instance)
    return {"service": name, "instances": {iid: _sim_call("POST", f"{url}/_chaos/reset") for iid, url in targets}}
