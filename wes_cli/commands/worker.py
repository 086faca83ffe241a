"""`wes worker`: worker processes in the foreground, for hosts that only run workers (`wes up` starts
its own)."""

from __future__ import annotations

from typing import Any

import click

from wes_cli.app import App, pass_app
from wes_cli.components import WorkersComponent
from wes_cli.supervisor import Supervisor, run_until_signalled


@click.command()
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
