"""`wes up`: the whole engine on this machine, in the foreground. Embedded Redis (unless REDIS_URL),
workers, the example definitions, the metrics exporter, the control API and the dashboard; with
``--demo`` also the simulated services, two example sagas and a continuous order feed."""

from __future__ import annotations

import os
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from engine.client import EngineClient
from engine.domain.status import is_terminal
from engine.settings import EngineSettings, default_home
from wes_cli.app import USER_ERRORS, App, error_message, pass_app, principal
from wes_cli.commands.definitions import apply_definitions, example_files
from wes_cli.commands.exporter import start_exporter
from wes_cli.commands.sim import SimComponent
from wes_cli.commands.waveless import OrderFeed
from wes_cli.commands.workflows import event_label
from wes_cli.components import ApiComponent, DashboardComponent, RedisComponent, WorkersComponent
from wes_cli.supervisor import Supervisor, run_until_signalled

EXAMPLE_WORKFLOW = "order-fulfillment"
DEMO_TIMEOUT_S = 60.0
DEMO_HTTP_WORKFLOW = "order-fulfillment-http"
DEMO_ORDERS_PER_S = 2.0
"""Base rate of the demo's order feed (bursty: it peaks at three times this once a minute)."""


def wait_all(client: EngineClient, ids: Sequence[str], timeout: float, stop: Callable[[], bool]) -> bool:
    """Wait until every workflow is terminal; False if `stop()` became true first."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        pending = [wid for wid in pending if not is_terminal(client.status(wid))]
        if not pending:
            break
        if stop():
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo sagas still running after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(0.1)
    return True


def run_demo(client: EngineClient, stop: Callable[[], bool], services: bool = False) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    runs = [
        ("happy path", EXAMPLE_WORKFLOW, {"order_id": f"demo-{tag}-1"}),
        ("fail_at: charge", EXAMPLE_WORKFLOW, {"order_id": f"demo-{tag}-2", "fail_at": "charge"}),
    ]
    if services:
        runs.append(("through the simulated services", DEMO_HTTP_WORKFLOW, {"order_id": f"demo-{tag}-3"}))
    started = [(label, client.start(name, data, principal=principal())) for label, name, data in runs]
    if not wait_all(client, [res["workflow_id"] for _, res in started], DEMO_TIMEOUT_S, stop):
        return []
    results = []
    for label, res in started:
        wid = res["workflow_id"]
        snap = client.get(wid)
        results.append(
            {
                "label": label,
                "workflow": res["definition"].split(":")[0],
                "workflow_id": wid,
                "status": snap["status"],
                "events": [event_label(e) for e in client.events(wid)],
            }
        )
    return results


def print_demo(results: list[dict[str, Any]]) -> None:
    click.echo(f"\ndemo: {len(results)} sagas")
    for run in results:
        click.echo(f"  {run['workflow_id']}  {run['status']:<12} {run['workflow']}: {run['label']}")
        sequence = " > ".join(run["events"])
        click.echo(textwrap.fill(sequence, width=110, initial_indent="      ", subsequent_indent="      "))


def env_hint(settings: EngineSettings) -> str:
    parts = []
    if settings.redis_url and os.environ.get("REDIS_URL") != settings.redis_url:
        parts.append(f"REDIS_URL={settings.redis_url}")
    if settings.redis_url is None and settings.home.resolve() != default_home().resolve():
        parts.append(f"WES_HOME={settings.home}")
    if settings.key_prefix != "wes":
        parts.append(f"WES_KEY_PREFIX={settings.key_prefix}")
    return " ".join(parts) + " " if parts else ""


def start_api(sup: Supervisor, settings: EngineSettings, client: EngineClient, port: int, demo: bool) -> dict[str, Any]:
    """Serve the control API (uvicorn in a subprocess)."""
    return sup.start(ApiComponent(settings, port, url=client.url, chaos=demo, log_file=settings.home / "api.log"))


def first_admin_key(client: EngineClient) -> str | None:
    """With no API key configured or stored, create an admin key (only its hash is stored) to print
    once. Called when everything else has started, so a failed start cannot swallow the key."""
    from api.auth import ensure_admin_key

    return ensure_admin_key(client)


def print_banner(settings: EngineSettings, info: dict[str, Any]) -> None:
    rd = info["redis"]
    if rd["embedded"]:
        how = "attached to the running embedded server" if rd["attached"] else "embedded"
        click.echo(f"redis        {rd['url']}  ({how}, pid {rd['pid']}, AOF on, data in {rd['data_dir']})")
        if rd.get("tcp_url") and rd["tcp_url"] != rd["url"]:
            click.echo(f"             {rd['tcp_url']}  (the same server over TCP, for redis-cli and other tools)")
    else:
        click.echo(f"redis        {rd['url']}  (external)")
    wk = info["workers"]
    click.echo(f"workers      {wk['count']} started (pids {', '.join(map(str, wk['pids']))}), log {wk['log_file']}")
    applied = ", ".join(
        f"{d['definition']} ({'created' if d['created'] else 'unchanged'})" for d in info["definitions"]
    )
    click.echo(f"definitions  {applied or 'none applied'}")
    if (info.get("metrics") or {}).get("url"):
        click.echo(f"metrics      {info['metrics']['url']}  (Prometheus exposition of every worker)")
    if api := info.get("api"):
        click.echo(f"api          {api['url']}/api/v1  (docs {api['docs']}, log {api['log_file']})")
        if api.get("admin_key"):
            click.echo(f"admin key    {api['admin_key']}  (shown once: only its hash is stored)")
        else:
            click.echo(
                "api keys     from WES_API_KEYS / WES_API_KEYS_FILE or the ones stored (`wes keys create admin`"
                " makes another)"
            )
    if dash := info.get("dashboard"):
        click.echo(f"dashboard    {dash['url']}  (log in with an API key; log {dash['log_file']})")
    env = env_hint(settings)
    # Through the ./wes bootstrap script, `wes` itself is not on PATH: show the command as invoked.
    wes = os.environ.get("WES_COMMAND", "wes")
    click.echo("\ntry:")
    click.echo(f"""  {env}{wes} start {EXAMPLE_WORKFLOW} --input '{{"order_id":"o-1"}}' --wait""")
    click.echo(f"""  {env}{wes} start {EXAMPLE_WORKFLOW} --input '{{"order_id":"o-2","fail_at":"charge"}}' --wait""")
    click.echo(f"  {env}{wes} list")


@click.command()
@click.option("--workers", "n_workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--redis-port", type=click.IntRange(1, 65535), default=6390, show_default=True)
@click.option("--fsync", type=click.Choice(["everysec", "always"]), default="everysec", show_default=True)
@click.option("--demo", is_flag=True, help="Run two example sagas (one compensates) once the workers are up.")
@click.option("--no-examples", is_flag=True, help="Do not apply the definitions in examples/.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Workers' log [HOME/workers.log].")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Port of /metrics [$WES_METRICS_PORT, 9464].")
@click.option("--api-port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port of the API.")
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port of the operator dashboard.")  # fmt: skip
@click.option("--no-api", is_flag=True, help="Do not serve the control API (nor the dashboard, which uses it).")
@click.option("--no-dashboard", is_flag=True, help="Do not serve the operator dashboard.")
@pass_app
def up(
    app: App,
    n_workers: int,
    redis_port: int,
    fsync: str,
    demo: bool,
    no_examples: bool,
    log_file: Path | None,
    metrics_port: int | None,
    api_port: int,
    dashboard_port: int,
    no_api: bool,
    no_dashboard: bool,
) -> None:
    """Run the engine in the foreground: embedded Redis (unless REDIS_URL), workers, example definitions.

    Ctrl-C stops everything cleanly; a second Ctrl-C kills the workers at once."""
    settings = app.settings
    sup = Supervisor()

    def boot() -> dict[str, Any]:
        settings.home.mkdir(parents=True, exist_ok=True)
        if settings.redis_url is None:
            redis_info = sup.start(RedisComponent(settings.home, redis_port, fsync))
        else:
            redis_info = {"url": settings.redis_url, "embedded": False, "attached": False}
        client = EngineClient(settings, url=redis_info["url"])
        client.ping()
        info: dict[str, Any] = {"redis": redis_info}
        if demo:
            app._client = client
            info["sim"] = sup.start(SimComponent(app, client.url, 1, None, settings.home / "sim.log"))
        files = [] if no_examples else example_files(services=demo)
        info["definitions"] = apply_definitions(client, files)
        info["workers"] = sup.start(WorkersComponent(settings, n_workers, log_file or settings.home / "workers.log"))
        port = settings.metrics_port if metrics_port is None else metrics_port
        info["metrics"] = start_exporter(sup, settings, client.url, port)
        if not no_api:
            info["api"] = start_api(sup, settings, client, api_port, demo)
            if not no_dashboard:
                dash = DashboardComponent(info["api"]["url"], dashboard_port, log_file=settings.home / "dashboard.log")
                info["dashboard"] = sup.start(dash)
            info["api"]["admin_key"] = first_admin_key(client)
        if not app.json:
            print_banner(settings, info)
        if demo:
            try:
                info["demo"] = run_demo(client, lambda: sup.stop_requested, services=True)
            except USER_ERRORS as exc:
                click.echo(f"warning: demo failed: {error_message(exc)}", err=True)
                info["demo"] = {"error": error_message(exc)}
            else:
                if info["demo"] and not app.json:
                    print_demo(info["demo"])
            feed = OrderFeed(client, DEMO_ORDERS_PER_S, "bursty", 3 * DEMO_ORDERS_PER_S)
            info["order_feed"] = sup.start(feed)
            if not app.json:
                wes = os.environ.get("WES_COMMAND", "wes")
                click.echo(
                    f"\norder feed: {DEMO_ORDERS_PER_S:g} orders/s (peaking at {3 * DEMO_ORDERS_PER_S:g}) onto the intake,"
                    f" released into {DEMO_HTTP_WORKFLOW} sagas by the waveless controller."
                    f"\n  watch the release:          {wes} waveless status"
                    f"\n  trip the payment breaker:  {wes} sim chaos payment --error-rate 1"
                    f"\n  and heal it:               {wes} sim chaos payment --reset"
                )
        return info

    run_until_signalled(app, sup, boot)
