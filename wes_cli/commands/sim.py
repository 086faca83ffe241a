"""`wes sim`: the simulated warehouse services in the foreground, registered as the engine's endpoints,
and `wes sim chaos`, their fault knobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from engine.errors import EngineError
from wes_cli.app import App, emit_json, pass_app, print_fields, table
from wes_cli.supervisor import Component, Supervisor, run_until_signalled

SIM_BASE_PORT = 9100


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


@click.group(invoke_without_command=True)
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
