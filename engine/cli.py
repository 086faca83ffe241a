"""The ``wes`` command: run the engine on this machine and operate sagas from a terminal.

Connection: ``--redis-url`` (else ``REDIS_URL``), else the embedded server that ``wes up`` recorded under
``--home`` (``WES_HOME``). Every command takes ``--json`` for exactly one JSON document on stdout.

Exit codes: 0 success; 1 error (one ``error: ...`` line on stderr); 2 usage error; 3 ``start --wait``
ended COMPENSATED or CANCELLED.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
import redis
import yaml
from pydantic import ValidationError

from engine.client import EngineClient, load_definitions
from engine.domain.definition import WorkflowDefinition
from engine.domain.status import ConsistencyLevel, WorkflowStatus, is_terminal
from engine.errors import DefinitionError, EngineError, InputValidationError
from engine.persistence.embedded import EmbeddedRedis
from engine.saga.worker import WorkerPool
from engine.settings import EngineSettings, default_home

EXIT_ERROR = 1
EXIT_NOT_COMPLETED = 3
USER_ERRORS: tuple[type[BaseException], ...] = (EngineError, TimeoutError, OSError, redis.RedisError)
STATUSES = [s.value for s in WorkflowStatus]
CONSISTENCY_LEVELS = [c.value for c in ConsistencyLevel]
EXAMPLE_WORKFLOW = "order-fulfillment"
FOLLOW_POLL_S = 0.2
SUPERVISE_POLL_S = 0.2
DEMO_TIMEOUT_S = 60.0
DEMO_HTTP_WORKFLOW = "order-fulfillment-http"
DEMO_ORDERS_PER_S = 2.0
"""Base rate of the demo's order feed (bursty: it peaks at three times this once a minute)."""


class CliInputError(EngineError):
    """A command-line value the engine cannot use (bad JSON, unreadable file)."""


@dataclass
class App:
    settings: EngineSettings
    json: bool = False
    _client: EngineClient | None = field(default=None, repr=False)

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            self._client = EngineClient(self.settings)
        return self._client


# ====================================================================== output helpers
def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def error_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return one_line(str(exc)) or type(exc).__name__


def fail(app: App | None, exc: BaseException) -> NoReturn:
    message = error_message(exc)
    if app is not None and app.json:
        emit_json({"error": message, "type": type(exc).__name__})
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def fmt_time(ts: float | None, date: bool = True) -> str:
    if not ts:
        return "-"
    text = datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")
    return text[:-3]


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def fmt_value(value: Any, limit: int = 80) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 60) -> None:
    cells = [[fmt_value(v, limit) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value if isinstance(value, str) else fmt_value(value, 200)}")


def principal() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def step_rows(snap: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for s in snap["steps"]:
        error = (s.get("comp_error") or s.get("error") or {}).get("message")
        rows.append([s["step_id"], s["status"], s["attempt"], fmt_duration(s.get("execution_time")), error])
    return rows


def print_outcome(snap: dict[str, Any]) -> None:
    print_fields(
        [
            ("status", snap["status"]),
            ("requires attention", bool(snap.get("requires_attention"))),
            ("failed compensations", snap.get("failed_compensations")),
            ("reason", snap.get("reason") or snap.get("compensation_reason")),
        ]
    )
    click.echo()
    table(["STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"], step_rows(snap))


def print_snapshot(snap: dict[str, Any]) -> None:
    times = snap["time_constraints"]
    print_fields(
        [
            ("workflow", snap["workflow_id"]),
            ("status", snap["status"]),
            ("definition", f"{snap['workflow_type']}:{snap['definition_version']}"),
            ("consistency", snap["consistency"]),
            ("correlation id", snap.get("correlation_id")),
            ("created", fmt_time(times.get("created_at"))),
            ("started", fmt_time(times.get("started_at"))),
            ("finished", fmt_time(times.get("finished_at"))),
            ("deadline", fmt_time(times.get("deadline"))),
            ("requires attention", bool(snap.get("requires_attention"))),
            ("failed compensations", snap.get("failed_compensations")),
            ("reason", snap.get("reason")),
            ("compensation reason", snap.get("compensation_reason")),
            ("compensation stack", snap.get("compensation_stack")),
            ("context", (snap.get("context") or {}).get("variables")),
        ]
    )
    click.echo()
    table(["STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"], step_rows(snap))


EVENT_HIDDEN = {"id", "type", "workflow_id", "at", "input", "output", "plan", "result", "metrics"}
EVENT_HIDDEN |= {"headers", "security", "tracing", "idempotency_key"}


def event_details(event: dict[str, Any]) -> str:
    parts = []
    for key, value in event.items():
        if key in EVENT_HIDDEN or value in (None, "", [], {}):
            continue
        if value is False:
            continue
        if key.endswith(("_at", "deadline", "completion_time")):
            text = fmt_time(value, date=False)
        elif key in ("execution_time", "elapsed_time", "budget"):
            text = fmt_duration(value)
        else:
            text = fmt_value(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def print_event(event: dict[str, Any], version: int) -> None:
    click.echo(f"{fmt_time(event['at'])}  v{version:<4} {event['type']:<26} {event_details(event)}".rstrip())


def event_label(event: dict[str, Any]) -> str:
    step = event.get("step_id")
    return f"{event['type']}({step})" if step else event["type"]


def parse_input(raw: str | None, path: str | None) -> dict[str, Any] | None:
    if raw is not None and path is not None:
        raise click.UsageError("give --input or --input-file, not both")
    source = "--input"
    if path is not None:
        source = "--input-file"
        try:
            raw = sys.stdin.read() if path == "-" else Path(path).read_text()
        except OSError as exc:
            raise CliInputError(f"cannot read --input-file {path}: {exc.strerror or exc}")
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliInputError(f"{source} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        raise InputValidationError([f"{source} must be a JSON object, got {type(data).__name__}"])
    return data


# ====================================================================== group
class WesGroup(click.Group):
    """Turns user errors raised anywhere below into one ``error:`` line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except USER_ERRORS as exc:
            fail(ctx.find_object(App), exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(App)
    if value and app is not None:
        app.json = True


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_json,
    help="Print exactly one JSON document on stdout.",
)


def _upper_choice(
    choices: Sequence[str], what: str
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None or value.upper() in choices:
            return value and value.upper()
        raise click.BadParameter(f"{value!r} is not a {what}; valid: {', '.join(choices)}")

    return check


_check_status = _upper_choice(STATUSES, "workflow status")
_check_consistency = _upper_choice(CONSISTENCY_LEVELS, "consistency level")


def pass_app(fn: Callable[..., Any]) -> Callable[..., Any]:
    return json_option(click.pass_obj(fn))


@click.group(cls=WesGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", metavar="URL", help="Redis to use (default: $REDIS_URL, else the embedded server).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Data directory ($WES_HOME).")
@click.option("--prefix", metavar="PREFIX", help="Key prefix in Redis ($WES_KEY_PREFIX).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, home: Path | None, prefix: str | None, as_json: bool) -> None:
    """WES Orchestration Engine: run sagas on Redis.

    Start everything locally with `wes up`, then `wes start`, `wes list`, `wes status ID`.
    """
    overrides: dict[str, Any] = {}
    if redis_url:
        overrides["redis_url"] = redis_url
    if home is not None:
        overrides["home"] = home
    if prefix:
        overrides["key_prefix"] = prefix
    try:
        settings = EngineSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(f"invalid settings: {problems}")
    ctx.obj = App(settings, json=as_json)


# ====================================================================== up / worker
class Component:
    """Something `wes up` starts, watches and stops; later: the API and the dashboard."""

    name = "component"

    def start(self) -> dict[str, Any]:
        raise NotImplementedError

    def check(self) -> None:
        """Called about every SUPERVISE_POLL_S while running (restart what died)."""

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Second Ctrl-C: stop now, without grace."""


class RedisComponent(Component):
    name = "redis"

    def __init__(self, home: Path, port: int, fsync: str):
        self.server = EmbeddedRedis(home, port=port, fsync=fsync)

    def start(self) -> dict[str, Any]:
        info = self.server.start()
        return {**asdict(info), "embedded": True, "attached": not self.server.owned}

    def stop(self) -> None:
        self.server.stop()


class WorkersComponent(Component):
    name = "workers"

    def __init__(self, settings: EngineSettings, concurrency: int, log_file: Path | None):
        self.log_file = log_file
        self.pool = WorkerPool(settings, concurrency=concurrency, log_file=str(log_file) if log_file else None)

    def start(self) -> dict[str, Any]:
        self.pool.start()
        return {"count": self.pool.concurrency, "pids": self.pool.pids, "log_file": self.log_file}

    def check(self) -> None:
        self.pool.check()

    def stop(self) -> None:
        self.pool.stop()

    def kill(self) -> None:
        for pid in self.pool.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Supervisor:
    """Starts components in order, supervises them until SIGINT/SIGTERM, stops them in reverse order.

    The first signal asks for a clean stop; a second one kills what is still stopping."""

    def __init__(self) -> None:
        self.running: list[Component] = []
        self.signals = 0
        self._previous: dict[int, Any] = {}

    @property
    def stop_requested(self) -> bool:
        return self.signals > 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os.write(2, b"\nkilling workers now\n")
            for component in reversed(self.running):
                component.kill()

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def start(self, component: Component) -> dict[str, Any]:
        info = component.start()
        self.running.append(component)
        return info

    def supervise(self) -> None:
        while not self.stop_requested:
            for component in self.running:
                component.check()
            time.sleep(SUPERVISE_POLL_S)

    def stop_all(self) -> None:
        for component in reversed(list(self.running)):
            try:
                component.stop()
            except Exception as exc:
                click.echo(f"warning: stopping {component.name} failed: {error_message(exc)}", err=True)
            finally:
                self.running.remove(component)


def example_files(services: bool = False) -> list[Path]:
    """The sample definitions; with ``services``, also those calling the simulated services."""
    import examples

    directory = Path(examples.__file__).parent
    dirs = [directory, directory / "services"] if services else [directory]
    return sorted(p for d in dirs for p in d.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def apply_definitions(client: EngineClient, paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    definitions: list[WorkflowDefinition] = [d for p in paths for d in load_definitions(p)]
    for definition in definitions:
        definition.validate()
        problems = client.handler_problems(definition)
        if problems:
            raise DefinitionError(problems, definition.name)
    applied = []
    for definition in definitions:
        stored, created = client.apply_definition(definition, check_handlers=False)
        applied.append(
            {"definition": stored.definition_id, "name": stored.name, "version": stored.version, "created": created}
        )
    return applied


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
    from api.component import ApiComponent

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


def run_until_signalled(app: App, sup: Supervisor, boot: Callable[[], dict[str, Any]]) -> None:
    """Install the signal handlers, boot, supervise until a signal, then stop everything."""
    sup.install_signals()
    try:
        info = boot()
        if app.json:
            emit_json(info)
        click.echo("\nrunning; Ctrl-C to stop", err=app.json)
        sys.stdout.flush()
        sup.supervise()
        click.echo("stopping (Ctrl-C again to kill the workers now)", err=True)
    finally:
        sup.stop_all()
        sup.restore_signals()
    click.echo("stopped", err=app.json)


@cli.command()
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
            from engine.cli_services import SimComponent

            app._client = client
            info["sim"] = sup.start(SimComponent(app, client.url, 1, None, settings.home / "sim.log"))
        files = [] if no_examples else example_files(services=demo)
        info["definitions"] = apply_definitions(client, files)
        info["workers"] = sup.start(WorkersComponent(settings, n_workers, log_file or settings.home / "workers.log"))
        from engine.cli_metrics import start_exporter

        port = settings.metrics_port if metrics_port is None else metrics_port
        info["metrics"] = start_exporter(sup, settings, client.url, port)
        if not no_api:
            info["api"] = start_api(sup, settings, client, api_port, demo)
            if not no_dashboard:
                from dashboard.component import DashboardComponent

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
            from engine.cli_waveless import OrderFeed

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


@cli.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@pass_app
def worker(app: App, concurrency: int) -> None:
    """Run worker processes in the foreground until Ctrl-C/SIGTERM."""
    sup = Supervisor()

    def boot() -> dict[str, Any]:
        app.client.ping()
        workers = sup.start(WorkersComponent(app.settings, concurrency, None))
        if not app.json:
            click.echo(f"{concurrency} worker(s) on {app.client.url} (pids {', '.join(map(str, workers['pids']))})")
        return {"redis_url": app.client.url, "workers": workers}

    run_until_signalled(app, sup, boot)


# ====================================================================== definitions
@cli.group()
def definitions() -> None:
    """Apply, list and show workflow definitions."""


@definitions.command("apply")
@click.argument("files", nargs=-1, required=True)
@pass_app
def definitions_apply(app: App, files: tuple[str, ...]) -> None:
    """Validate and store definitions from YAML/JSON/Python files or directories."""
    applied = apply_definitions(app.client, files)
    if app.json:
        emit_json(applied)
        return
    for d in applied:
        click.echo(f"{d['definition']}  {'created' if d['created'] else 'unchanged'}")


@definitions.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include inactive versions.")
@pass_app
def definitions_list(app: App, show_all: bool) -> None:
    """List the active definitions (all versions with --all)."""
    found = app.client.list_definitions(active_only=not show_all)
    if app.json:
        emit_json([d.to_dict() for d in found])
        return
    rows = [[d.name, d.version, d.active, d.consistency.value, len(d.steps), d.description] for d in found]
    table(["NAME", "VERSION", "ACTIVE", "CONSISTENCY", "STEPS", "DESCRIPTION"], rows)


@definitions.command("show")
@click.argument("name")
@click.option("--version", type=int, help="Version (default: the latest active one).")
@pass_app
def definitions_show(app: App, name: str, version: int | None) -> None:
    """Print a definition (YAML; JSON with --json)."""
    data = json.loads(json.dumps(app.client.get_definition(name, version).to_dict(), default=str))
    if app.json:
        emit_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


# ====================================================================== workflows
@cli.command()
@click.argument("name")
@click.option("--version", type=int, help="Definition version (default: the latest active one).")
@click.option("--input", "input_json", metavar="JSON", help="Input object as JSON.")
@click.option("--input-file", metavar="FILE", help="Input object from a JSON file ('-': stdin).")
@click.option("--correlation-id", metavar="ID")
@click.option("--consistency", callback=_check_consistency, help=f"One of {', '.join(CONSISTENCY_LEVELS)}.")
@click.option("--idempotency-key", metavar="KEY", help="Starting twice with one key returns the first workflow.")
@click.option("--wait", is_flag=True, help="Wait until the workflow finishes and print the outcome.")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, help="Seconds for --wait.")
@pass_app
def start(
    app: App,
    name: str,
    version: int | None,
    input_json: str | None,
    input_file: str | None,
    correlation_id: str | None,
    consistency: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Start a workflow of definition NAME and print its id.

    With --wait the exit code tells the outcome: 0 COMPLETED, 3 COMPENSATED or CANCELLED,
    1 error (including a --timeout that ran out)."""
    data = parse_input(input_json, input_file)
    res = app.client.start(
        name,
        data,
        version=version,
        correlation_id=correlation_id,
        consistency=consistency,
        idempotency_key=idempotency_key,
        principal=principal(),
    )
    wid = res["workflow_id"]
    snap = app.client.wait(wid, timeout=timeout) if wait else None
    if app.json:
        emit_json({**res, "final": snap} if snap is not None else res)
    else:
        click.echo(wid)
        note = "" if res["created"] else "  (existing workflow: idempotency key seen before)"
        click.echo(f"{res['definition']}  {res['status']}{note}")
        if snap is not None:
            click.echo()
            print_outcome(snap)
    if snap is not None and snap["status"] != WorkflowStatus.COMPLETED:
        sys.exit(EXIT_NOT_COMPLETED)


@cli.command()
@click.argument("workflow_id")
@pass_app
def status(app: App, workflow_id: str) -> None:
    """Show a workflow: status, times, outcome and its steps."""
    snap = app.client.get(workflow_id)
    if app.json:
        emit_json(snap)
    else:
        print_snapshot(snap)


@cli.command()
@click.argument("workflow_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the workflow finishes.")
@pass_app
def events(app: App, workflow_id: str, follow: bool) -> None:
    """Print a workflow's events, oldest first."""
    client = app.client
    seen: list[dict[str, Any]] = []
    last = "-"
    while True:
        finished = is_terminal(client.status(workflow_id)) if follow else True
        batch = client.events(workflow_id, after=last)
        for event in batch:
            seen.append(event)
            if not app.json:
                print_event(event, len(seen))
        if batch:
            last = batch[-1]["id"]
            sys.stdout.flush()
        if finished:
            break
        time.sleep(FOLLOW_POLL_S)
    if app.json:
        emit_json([{**e, "version": i} for i, e in enumerate(seen, 1)])


@cli.command("list")
@click.option("--status", "status_", callback=_check_status, help=f"One of {', '.join(STATUSES)}.")
@click.option("--definition", metavar="NAME", help="Definition name.")
@click.option("--correlation-id", metavar="ID")
@click.option("--attention", is_flag=True, help="Only workflows that require attention.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--cursor", metavar="CURSOR", help="Continue after the page that printed it.")
@click.option("--oldest", is_flag=True, help="Oldest first (the ones that may be stuck).")
@pass_app
def list_(
    app: App,
    status_: str | None,
    definition: str | None,
    correlation_id: str | None,
    attention: bool,
    limit: int,
    cursor: str | None,
    oldest: bool,
) -> None:
    """List workflows, newest first (--oldest: oldest first)."""
    page = app.client.list(
        status=status_,
        definition=definition,
        correlation_id=correlation_id,
        requires_attention=attention,
        limit=limit,
        cursor=cursor,
        order="oldest" if oldest else "newest",
    )
    if app.json:
        emit_json({"items": page.items, "next_cursor": page.next_cursor})
        return
    rows = [
        [
            s["workflow_id"],
            f"{s['workflow_type']}:{s['definition_version']}",
            s["status"],
            fmt_time(s["time_constraints"]["created_at"]),
            fmt_time(s.get("updated_at")),
            bool(s.get("requires_attention")),
        ]
        for s in page.items
    ]
    table(["ID", "DEFINITION", "STATUS", "CREATED", "UPDATED", "ATTENTION"], rows)
    if page.next_cursor:
        click.echo(f"\nnext page: wes list --cursor {page.next_cursor}")


def print_control(app: App, snap: dict[str, Any]) -> None:
    if app.json:
        emit_json(snap)
    else:
        click.echo(f"{snap['workflow_id']}  {snap['status']}")


@cli.command()
@click.argument("workflow_id")
@pass_app
def pause(app: App, workflow_id: str) -> None:
    """Pause a RUNNING workflow (the step in flight finishes first)."""
    print_control(app, app.client.pause(workflow_id, by=principal()))


@cli.command()
@click.argument("workflow_id")
@pass_app
def resume(app: App, workflow_id: str) -> None:
    """Resume a PAUSED workflow."""
    print_control(app, app.client.resume(workflow_id, by=principal()))


@cli.command()
@click.argument("workflow_id")
@click.option("--reason", default="cancelled", show_default=True)
@pass_app
def cancel(app: App, workflow_id: str, reason: str) -> None:
    """Cancel a workflow; completed steps are compensated."""
    print_control(app, app.client.cancel(workflow_id, by=principal(), reason=reason))


@cli.command("retry-compensation")
@click.argument("workflow_id")
@click.option("--step", "steps", multiple=True, metavar="STEP", help="Step to retry (default: every failed one).")
@pass_app
def retry_compensation(app: App, workflow_id: str, steps: tuple[str, ...]) -> None:
    """Retry the failed compensations of a workflow."""
    print_control(app, app.client.retry_compensation(workflow_id, list(steps) or None, by=principal()))


@cli.command()
@click.argument("workflow_id")
@pass_app
def validate(app: App, workflow_id: str) -> None:
    """Check that replaying the workflow's events gives its stored state (exit 1 if not)."""
    report = app.client.validate_consistency(workflow_id)
    if app.json:
        emit_json(asdict(report))
    elif report.consistent:
        click.echo(f"consistent: replaying {report.stored_version} events gives the stored state")
    else:
        click.echo(f"INCONSISTENT: stored version {report.stored_version}, replayed {report.replayed_version}")
        if not report.versions_sequential:
            click.echo("  event versions are not 1..n")
        for diff in report.differences:
            click.echo(f"  {diff}")
    if not report.consistent:
        sys.exit(EXIT_ERROR)


# ====================================================================== bench
@cli.command()
@click.argument("kind", required=False, type=click.Choice(["waveless", "api"]))
@click.option("--workflows", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Starts per second (default: flat out).")
@click.option("--naive-workflows", type=click.IntRange(min=0), help="Workflows of the RQ-job-per-step run.")
@click.option("--breaker", "breaker_calls", type=click.IntRange(min=10), default=None, metavar="CALLS",
              help="Instead: the latency the circuit breaker and load balancer add to CALLS service calls.")  # fmt: skip
@click.option("--peak-rate", type=click.FloatRange(min=0, min_open=True), help="waveless: orders/s at the peak [36].")
@click.option("--duration", type=click.FloatRange(min=1), help="waveless: seconds of arrivals per mode [36].")
@click.option("--wave-interval", type=click.FloatRange(min=0.1), help="waveless: seconds between fixed waves [5].")
@click.option("--stored", type=click.IntRange(min=1), default=100_000, show_default=True, help="api: workflows stored.")
@click.option("--requests", type=click.IntRange(min=10), default=2000, show_default=True, help="api: timed calls each.")
@pass_app
def bench(
    app: App,
    kind: str | None,
    workflows: int,
    steps: int,
    workers: int,
    rate: float | None,
    naive_workflows: int | None,
    breaker_calls: int | None,
    peak_rate: float | None,
    duration: float | None,
    wave_interval: float | None,
    stored: int,
    requests: int,
) -> None:
    """Measure throughput and latency, against one RQ job per step.

    `wes bench waveless` instead runs one bursty order stream through fixed waves and through waveless
    release on the simulated services (--rate is then the base order rate, --workers per mode);
    `wes bench api` times the control API over HTTP with --stored workflows in Redis.
    Uses its own embedded Redis unless --redis-url/REDIS_URL is given."""
    if kind == "waveless":
        from engine.bench_waveless import run_waveless_bench

        given = {"rate": rate, "peak_rate": peak_rate, "duration": duration, "wave_interval": wave_interval}
        kwargs = {k: v for k, v in given.items() if v is not None}
        result = run_waveless_bench(workers=workers, redis_url=app.settings.redis_url, **kwargs)
    elif kind == "api":
        from api.bench import run as run_api_bench

        result = run_api_bench(stored, requests, redis_url=app.settings.redis_url)
    elif breaker_calls is not None:
        from engine.bench_breaker import run_breaker_bench

        result = run_breaker_bench(breaker_calls, redis_url=app.settings.redis_url)
    else:
        from engine.bench import run_bench

        result = run_bench(
            workflows=workflows,
            steps=steps,
            workers=workers,
            rate=rate,
            naive_workflows=naive_workflows,
            redis_url=app.settings.redis_url,
        )
    if app.json:
        emit_json(result)
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        click.echo(f"{key.ljust(width)}  {fmt_value(value, 200)}")


# The service endpoint commands (services, breaker, sim) register themselves on `cli`.
import engine.cli_keys  # noqa: E402  (`wes keys`)
import engine.cli_metrics  # noqa: E402  (`wes exporter`)
import engine.cli_services  # noqa: E402, F401
from engine import cli_waveless  # noqa: E402, F401  (`wes orders`, `wes waveless`)


def main() -> None:
    cli(prog_name="wes")


if __name__ == "__main__":
    # Under `python -m engine.cli` this module is __main__, and the command modules above registered
    # themselves on the `cli` of the importable engine.cli: run that one.
    from engine.cli import main as registered_main

    registered_main()
