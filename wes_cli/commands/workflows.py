"""`wes start`, `status`, `events`, `list`, `pause`, `resume`, `cancel`, `retry-compensation`, `validate`:
operate sagas from a terminal, and how a workflow, its steps and its events print."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

import click

from engine.domain.status import WorkflowStatus, is_terminal
from wes_cli.app import (
    CONSISTENCY_LEVELS,
    EXIT_ERROR,
    EXIT_NOT_COMPLETED,
    STATUSES,
    App,
    emit_json,
    fmt_duration,
    fmt_time,
    fmt_value,
    parse_input,
    pass_app,
    principal,
    print_fields,
    table,
    upper_choice,
)

FOLLOW_POLL_S = 0.2

_check_status = upper_choice(STATUSES, "workflow status")
_check_consistency = upper_choice(CONSISTENCY_LEVELS, "consistency level")


# ====================================================================== views
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


@click.command()
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


@click.command()
@click.argument("workflow_id")
@pass_app
def status(app: App, workflow_id: str) -> None:
    """Show a workflow: status, times, outcome and its steps."""
    snap = app.client.get(workflow_id)
    if app.json:
        emit_json(snap)
    else:
        print_snapshot(snap)


@click.command()
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


@click.command("list")
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


@click.command()
@click.argument("workflow_id")
@pass_app
def pause(app: App, workflow_id: str) -> None:
    """Pause a RUNNING workflow (the step in flight finishes first)."""
    print_control(app, app.client.pause(workflow_id, by=principal()))


@click.command()
@click.argument("workflow_id")
@pass_app
def resume(app: App, workflow_id: str) -> None:
    """Resume a PAUSED workflow."""
    print_control(app, app.client.resume(workflow_id, by=principal()))


@click.command()
@click.argument("workflow_id")
@click.option("--reason", default="cancelled", show_default=True)
@pass_app
def cancel(app: App, workflow_id: str, reason: str) -> None:
    """Cancel a workflow; completed steps are compensated."""
    print_control(app, app.client.cancel(workflow_id, by=principal(), reason=reason))


@click.command("retry-compensation")
@click.argument("workflow_id")
@click.option("--step", "steps", multiple=True, metavar="STEP", help="Step to retry (default: every failed one).")
@pass_app
def retry_compensation(app: App, workflow_id: str, steps: tuple[str, ...]) -> None:
    """Retry the failed compensations of a workflow."""
    print_control(app, app.client.retry_compensation(workflow_id, list(steps) or None, by=principal()))


@click.command()
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
