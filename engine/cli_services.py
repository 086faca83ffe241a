"""`wes services`, `wes breaker` and `wes sim`: the service endpoints sagas call.

Registered on the main `wes` group by engine.cli.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from engine.cli import App, Component, Supervisor, cli, emit_json, pass_app, print_fields, run_until_signalled, table
from engine.errors import DefinitionError, EngineError

SIM_BASE_PORT = 9100


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
@cli.group()
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
@cli.group()
def breaker() -> None:
    """Circuit breakers of service endpoints (shared by every worker)."""


def _force(app: App, name: str, mode: str) -> None:
    from engine.cli import principal

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


# ====================================================================== sim
class SimComponent(Component):
    """The simulated warehouse services, registered as the engine's endpoints."""

    name = "sim"

    def __init__(self, app: App, url: str, instances: int, base_port: int | None, log_file: Path | None):
        from sim.launcher import SERVICES, SimCluster

        self.app = app
        self.cluster = SimCluster(url, {name: instances for name in SERVICES}, base_port=base_port, log_file=log_file)

    def start(self) -> dict[str, Any]:
        instances = self.cluster.start()
        self.app.client.services.apply(self.cluster.services_config())
        return {"instances": [{"service": i.service, "id": i.instance_id, "url": i.url} for i in instances]}

    def stop(self) -> None:
        self.cluster.stop()

    def kill(self) -> None:
        self.cluster.stop()


@cli.group(invoke_without_command=True)
@click.option("--instances", "n", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Instances of each service.")  # fmt: skip
@click.option("--base-port", type=int, default=SIM_BASE_PORT, show_default=True, help="Port of the first instance.")
@click.pass_context
def sim(ctx: click.Context, n: int, base_port: int) -> None:
    """Run the simulated warehouse services in the foreground and register them as endpoints.

    Services: inventory, location, picking, packing, shipping, payment; each operation has its undo,
    honours Idempotency-Key, and has chaos knobs (`wes sim chaos`)."""
    if ctx.invoked_subcommand is not None:
        return
    app: App = ctx.obj
    sup = Supervisor()

    def boot() -> dict[str, Any]:
        info = sup.start(SimComponent(app, app.client.url, n, base_port, app.settings.home / "sim.log"))
        if not app.json:
            table(["SERVICE", "INSTANCE", "URL"], [[i["service"], i["id"], i["url"]] for i in info["instances"]])
            click.echo("\nregistered as service endpoints; try: wes sim chaos payment --error-rate 1")
        return info

    run_until_signalled(app, sup, boot)


@sim.command("chaos")
@click.argument("service")
@click.option("--instance", "instance_id", help="Only this instance (default: every instance of the service).")
@click.option("--error-rate", type=click.FloatRange(0, 1), help="Share of calls answered with an error (0..1).")
@click.option("--error-status", type=click.IntRange(400, 599), help="Status of injected errors (default 503).")
@click.option("--latency-mean", type=click.FloatRange(0), help="Mean latency added to each call, ms.")
@click.option("--latency-p99", type=click.FloatRange(0), help="p99 of that latency, ms.")
@click.option("--down/--up", default=None, help="Hard down: every request answered 503 at once.")
@click.option("--health-delay", type=click.FloatRange(0), help="Seconds /health waits before answering.")
@click.option("--reset", is_flag=True, help="Back to no chaos.")
@pass_app
def sim_chaos(
    app: App,
    service: str,
    instance_id: str | None,
    error_rate: float | None,
    error_status: int | None,
    latency_mean: float | None,
    latency_p99: float | None,
    down: bool | None,
    health_delay: float | None,
    reset: bool,
) -> None:
    """Set chaos knobs on a simulated service's instances (found through the service registry)."""
    from sim.launcher import reset_chaos, set_chaos

    endpoint = app.client.services.endpoint(service)
    targets = [i for i in endpoint.instances if instance_id in (None, i.id)]
    if not targets:
        raise EngineError(f"service {service!r} has no instance {instance_id!r}")
    knobs: dict[str, Any] = {}
    if error_rate is not None:
        knobs["error_rate"] = error_rate
    if error_status is not None:
        knobs["error_status"] = error_status
    if latency_mean is not None or latency_p99 is not None:
        mean = latency_mean or 0.0
        knobs["latency_ms"] = {"mean": mean, "p99": latency_p99 if latency_p99 is not None else mean}
    if down is not None:
        knobs["down"] = down
    if health_delay is not None:
        knobs["health_delay_s"] = health_delay
    if not knobs and not reset:
        raise click.UsageError("nothing to set: give a knob (see --help) or --reset")
    results = {}
    for instance in targets:
        if reset:
            reset_chaos(instance.url)
        results[instance.id] = set_chaos(instance.url, **knobs) if knobs else {"reset": True}
    if app.json:
        emit_json(results)
        return
    for iid, state in results.items():
        print_fields([(iid, json.dumps(state, sort_keys=True))])
