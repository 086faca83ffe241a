"""Workflow definitions: list, read, validate, apply (admin), activate and deactivate versions (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, status

from api import audit, views
from api.deps import Admin, EngineDep, Viewer
from api.errors import CONTROL, READ, not_found, problems, reading
from api.schemas.definitions import (
    DefinitionApplied,
    DefinitionSummary,
    DefinitionValidation,
    DefinitionVersions,
    DefinitionView,
)
from engine import DefinitionError, EngineClient, WorkflowDefinition

router = APIRouter(prefix="/definitions", tags=["definitions"])
Name = Annotated[str, Path(min_length=1, max_length=200, description="Definition name")]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
DefinitionBody = Annotated[
    dict[str, Any],
    Body(description="A definition in its JSON form (the YAML of `wes definitions apply`, as JSON)"),
]


def parse(raw: dict[str, Any]) -> WorkflowDefinition:
    """Parse and validate the structure; every problem in one DefinitionError (422)."""
    with reading("the definition"):
        definition = WorkflowDefinition.from_dict(raw)
    definition.validate()
    return definition


def _name(raw: dict[str, Any]) -> str | None:
    name = raw.get("name")
    return name if isinstance(name, str) else None


def _check(engine: EngineClient, raw: dict[str, Any]) -> WorkflowDefinition:
    definition = parse(raw)
    found = engine.handler_problems(definition)
    if found:
        raise DefinitionError(found, definition.name)
    return definition


@router.get("", response_model=list[DefinitionSummary], responses=READ, summary="Every stored version")
def list_definitions(engine: EngineDep, _: Viewer, active_only: bool = False) -> Any:
    return [views.definition_summary(d) for d in engine.list_definitions(active_only=active_only)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DefinitionApplied,
    responses={200: {"model": DefinitionApplied, "description": "Same content as the latest version"}, **CONTROL},
    summary="Validate and store a definition (a new version when its content changed)",
)
def apply_definition(body: DefinitionBody, request: Request, response: Response, engine: EngineDep, _: Admin) -> Any:
    audit.note(request, target=_name(body))
    stored, created = engine.apply_definition(_check(engine, body), check_handlers=False)
    audit.note(request, target=stored.definition_id, created=created)
    if not created:
        response.status_code = status.HTTP_200_OK
    return {
        "definition": stored.definition_id,
        "name": stored.name,
        "version": stored.version,
        "created": created,
        "active": stored.active,
    }


@router.post(
    "/validate",
    response_model=DefinitionValidation,
    responses=problems(400, 401, 403, 422, 429),
    summary="Check a definition without storing it: every problem, precisely",
)
def validate_definition(body: DefinitionBody, engine: EngineDep, _: Admin) -> Any:
    try:
        definition = _check(engine, body)
    except DefinitionError as exc:
        return {"valid": False, "name": exc.name or _name(body), "problems": exc.problems}
    return {"valid": True, "name": definition.name, "problems": []}


@router.get(
    "/{name}", response_model=DefinitionVersions, responses={**READ, **problems(404)}, summary="Versions of a name"
)
def definition_versions(name: Name, engine: EngineDep, _: Viewer) -> Any:
    versions = [d for d in engine.list_definitions() if d.name == name]
    if not versions:
        raise not_found(f"no workflow definition named {name!r}")
    active = [d.version for d in versions if d.active]
    return {
        "name": name,
        "versions": [views.definition_summary(d) for d in sorted(versions, key=lambda d: d.version or 0)],
        "latest_active": max(active) if active else None,  # type: ignore[type-var]
    }


@router.get(
    "/{name}/versions/{version}",
    response_model=DefinitionView,
    responses={**READ, **problems(404)},
    summary="One version in full",
)
def get_definition(name: Name, version: Version, engine: EngineDep, _: Viewer) -> Any:
    return engine.get_definition(name, version).to_dict()


def _set_active(request: Request, engine: EngineClient, name: str, version: int, active: bool) -> dict[str, Any]:
    audit.note(request, target=f"{name}:{version}")
    engine.set_definition_active(name, version, active)
    return engine.get_definition(name, version).to_dict()


@router.post(
    "/{name}/versions/{version}/activate",
    response_model=DefinitionView,
    responses=CONTROL,
    summary="Make a version startable (a start without version takes the latest active one)",
)
def activate_definition(name: Name, version: Version, request: Request, engine: EngineDep, _: Admin) -> Any:
    return _set_active(request, engine, name, version, True)


@router.post(
    "/{name}/versions/{version}/deactivate",
    response_model=DefinitionView,
    responses=CONTROL,
    summary="Stop new starts of a version (running workflows keep it)",
)
def deactivate_definition(name: Name, version: Version, request: Request, engine: EngineDep, _: Admin) -> Any:
    return _set_active(request, engine, name, version, False)
