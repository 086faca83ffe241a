"""`wes worker`: worker processes in the foreground, for hosts that only run workers (`wes up` starts
its own)."""

from __future__ import annotations

from typing import Any

import click

from wes_cli.app import App, pass_app
from wes_cli.components import WorkersComponent
from wes_cli.supervisor import Supervisor, run_until_signalled


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    help="Sagas each process runs at once [$WES_MAX_IN_FLIGHT, 256].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Threads per process for plain (def) step handlers [$WES_STEP_THREADS, 64].",
)
@pass_app
def worker(app: App, concurrency: int, max_in_flight: int | None, threads: int | None) -> None:
    """Run worker processes in the foreground until Ctrl-C/SIGTERM.

    Each process keeps many steps in flight: async handlers and HTTP service calls on its event loop,
    plain handlers on a pool of threads."""
    overrides = {k: v for k, v in (("max_in_flight", max_in_flight), ("step_threads", threads)) if v is not None}
    if overrides:
        app.settings = app.settings.model_copy(update=overrides)
    sup = Supervisor()

    def boot() -> dict[str, Any]:
        app.client.ping()
        workers = sup.start(WorkersComponent(app.settings, concurrency, None))
        if not app.json:
            click.echo(f"{concurrency} worker(s) on {app.client.url} (pids {', '.join(map(str, workers['pids']))})")
        return {"redis_url": app.client.url, "workers": workers}

    run_until_signalled(app, sup, boot)
