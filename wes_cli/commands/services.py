"""`wes services` and `wes breaker`: the service endpoints sagas call, and their circuit breakers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from engine.errors import DefinitionError, EngineError
from wes_cli.app import App, emit_json, pass_app, principal, table


def read_config(path: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise EngineError(f"no such file: {p}")
    text = p.read_text()
    try:
        return json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError([f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}"])


def service_rows(app: App) -> list[dict[str, Any]]:
    registry = app.client.services
    rows = []
    for name, endpoint in sorted(registry.endpoints().items()):
        breaker = registry.get_circuit_breaker_state(name)
        health = registry.health(name)
        for load in registry.loads(endpoint):
            instance = endpoint.instance(load.id)
            h = health.get(load.id, {})
            rows.append(
                {
                    "service": name,
                    "instance": load.id,
                    "url": instance.url if instance else "",
                    "health": h.get("status", "UNKNOWN"),
                    "checked_at": h.get("checked_at"),
                    "in_flight": load.in_flight,
                    "capacity": load.capacity,
                    "utilization": round(load.utilization, 3),
                    "breaker": (breaker["forced"] and f"FORCED_{breaker['forced']}") or breaker["state"],
                }
            )
    return rows


# ====================================================================== services
@click.group()
def services() -> None:
    """Service endpoints that steps call (`service:` + `operation:` actions)."""


@services.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_app
def services_apply(app: App, file: str) -> None:
    """Validate and store service endpoints from a YAML/JSON file (each replaces its earlier config)."""
    endpoints = app.client.services.apply(read_config(file))
    if app.json:
        emit_json({"applied": [e.name for e in endpoints]})
        return
    for e in endpoints:
        click.echo(f"{e.name}  {len(e.instances)} instance(s)")


@services.command("remove")
@click.argument("name")
@pass_app
def services_remove(app: App, name: str) -> None:
    """Remove a service endpoint (steps naming it then fail with a clear error)."""
    app.client.services.remove(name)
    if app.json:
        emit_json({"removed": name})
    else:
        click.echo(f"{name}  removed")


@services.command("list")
@pass_app
def services_list(app: App) -> None:
    """Instances with their health, utilization against the target, and the breaker state."""
    rows = service_rows(app)
    if app.json:
        emit_json(rows)
        return
    table(
        ["SERVICE", "INSTANCE", "URL", "HEALTH", "IN FLIGHT", "UTILIZATION", "BREAKER"],
        [
            [r["service"], r["instance"], r["url"], r["health"], f"{r['in_flight']}/{r['capacity']}",
             f"{r['utilization']:.0%}", r["breaker"]]
            for r in rows
        ],
    )  # fmt: skip


@services.command("show")
@click.argument("name")
@pass_app
def services_show(app: App, name: str) -> None:
    """One endpoint: its configuration and its circuit breaker."""
    registry = app.client.services
    endpoint = registry.endpoint(name)
    data = {"service": name, **endpoint.to_dict(), "breaker_state": registry.get_circuit_breaker_state(name)}
    if app.json:
        emit_json(data)
        return
    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


# ====================================================================== breaker
@click.group()
def breaker() -> None:
    """Circuit breakers of service endpoints (shared by every worker)."""


def _force(app: App, name: str, mode: str) -> None:
    state = app.client.services.force(name, mode, by=principal())
    if app.json:
        emit_json(state)
        return
    forced = f" (forced {state['forced']})" if state["forced"] else ""
    click.echo(f"{name}  {state['state']}{forced}")


@breaker.command("open")
@click.argument("service")
@pass_app
def breaker_open(app: App, service: str) -> None:
    """Force the breaker OPEN: every call fails fast until reset."""
    _force(app, service, "OPEN")


@breaker.command("close")
@click.argument("service")
@pass_app
def breaker_close(app: App, service: str) -> None:
    """Force the breaker CLOSED: calls go through whatever their outcome, until reset."""
    _force(app, service, "CLOSED")


@breaker.command("reset")
@click.argument("service")
@pass_app
def breaker_reset(app: App, service: str) -> None:
    """Clear any force and the failure window: the breaker is CLOSED."""
    _force(app, service, "RESET")


@breaker.command("status")
@click.argument("service", required=False)
@pass_app
def breaker_status(app: App, service: str | None) -> None:
    """State, failure rate over the window, trips."""
    registry = app.client.services
    names = [service] if service else sorted(registry.endpoints())
    states = [registry.get_circuit_breaker_state(n) for n in names]
    if app.json:
        emit_json(states if not service else states[0])
        return
    table(
        ["SERVICE", "STATE", "FORCED", "WINDOW", "FAILURE RATE", "TRIPS", "CALLS", "FAILURES"],
        [
            [s["service"], s["state"], s["forced"] or "-", s["window_calls"], f"{s['window_failure_rate']:.0%}",
             s["trips"], s["calls"], s["failures"]]
            for s in states
        ],
    )  # fmt: skip
