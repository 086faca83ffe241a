"""The ``wes`` command: run the engine on this machine and operate sagas from a terminal.

Connection: ``--redis-url`` (else ``REDIS_URL``), else the embedded server that ``wes up`` recorded under
``--home`` (``WES_HOME``). Every command takes ``--json`` for exactly one JSON document on stdout.

Exit codes: 0 success; 1 error (one ``error: ...`` line on stderr); 2 usage error; 3 ``start --wait``
ended COMPENSATED or CANCELLED.

The root group is here and only here: each module of ``wes_cli.commands`` defines its commands without
knowing the root, and :data:`COMMANDS` adds them to it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from engine.settings import EngineSettings
from wes_cli.app import USER_ERRORS, App, fail
from wes_cli.commands import (
    bench,
    definitions,
    exporter,
    keys,
    services,
    sim,
    up,
    waveless,
    worker,
    workflows,
)


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


COMMANDS: tuple[click.Command, ...] = (
    up.up,
    worker.worker,
    definitions.definitions,
    workflows.start,
    workflows.status,
    workflows.events,
    workflows.list_,
    workflows.pause,
    workflows.resume,
    workflows.cancel,
    workflows.retry_compensation,
    workflows.validate,
    services.services,
    services.breaker,
    sim.sim,
    waveless.orders,
    waveless.waveless,
    keys.keys,
    exporter.exporter,
    bench.bench,
)
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="wes")
