"""`wes definitions apply|list|show`: the workflow definitions sagas are started from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from engine.client import EngineClient
from engine.definition_files import load_definitions
from engine.domain.definition import WorkflowDefinition
from engine.errors import DefinitionError
from wes_cli.app import App, emit_json, pass_app, table


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


@click.group()
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
