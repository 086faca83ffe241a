"""What every `wes` command shares: the :class:`App` (settings, the engine client, ``--json``), the
output helpers (tables, fields, times, durations, JSON) and the parsing of option values.

Exit codes: 0 success; 1 error (one ``error: ...`` line on stderr); 2 usage error; 3 ``start --wait``
ended COMPENSATED or CANCELLED.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from engine.client import EngineClient
from engine.domain.status import ConsistencyLevel, WorkflowStatus
from engine.errors import EngineError, InputValidationError
from engine.persistence.errors import StoreError
from engine.settings import EngineSettings

EXIT_ERROR = 1
EXIT_NOT_COMPLETED = 3
USER_ERRORS: tuple[type[BaseException], ...] = (EngineError, TimeoutError, OSError, StoreError)
"""Raised anywhere below a command, these are one ``error:`` line and exit code 1, never a traceback."""
STATUSES = [s.value for s in WorkflowStatus]
CONSISTENCY_LEVELS = [c.value for c in ConsistencyLevel]


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


# ====================================================================== option values
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


def upper_choice(
    choices: Sequence[str], what: str
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None or value.upper() in choices:
            return value and value.upper()
        raise click.BadParameter(f"{value!r} is not a {what}; valid: {', '.join(choices)}")

    return check


def pass_app(fn: Callable[..., Any]) -> Callable[..., Any]:
    return json_option(click.pass_obj(fn))
