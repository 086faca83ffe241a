"""Workflows: start, read, list, events, and the operator's controls (one at a time or in bulk)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, status
from pydantic import AfterValidator, WithJsonSchema

from api import audit, views
from api.deps import EngineDep, Operator, ServicesDep, Viewer
from api.errors import CONTROL, READ, ApiProblem, problems, to_problem
from api.schemas.workflows import (
    BulkAction,
    BulkItem,
    BulkItemError,
    BulkRequest,
    BulkResult,
    ConsistencyView,
    ControlReason,
    RetryCompensation,
    WorkflowCounts,
    WorkflowDetail,
    WorkflowEvent,
    WorkflowPage,
    WorkflowStart,
    WorkflowStarted,
)
from engine import EngineClient, WorkflowStatus

router = APIRouter(prefix="/workflows", tags=["workflows"])
WorkflowId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Workflow id")]


ISO_TIME = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})?)?$"
MAX_EPOCH = 1e10


def _instant(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        if not re.fullmatch(ISO_TIME, raw):
            raise ValueError("expected ISO 8601 (2026-01-31T08:00:00Z; naive is UTC) or epoch seconds")
        parsed = datetime.fromisoformat(raw.upper().replace("Z", "+00:00").replace(" ", "T"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not 0 <= value <= MAX_EPOCH:
        raise ValueError(f"epoch seconds must be within [0, {MAX_EPOCH:g}]")
    return value


Instant = Annotated[
    str,
    AfterValidator(_instant),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": ISO_TIME}, {"type": "number", "minimum": 0, "maximum": MAX_EPOCH}]}
    ),
]
"""A query time: ISO 8601 (naive is UTC) or epoch seconds; the route receives epoch seconds."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkflowStarted,
    responses={200: {"model": WorkflowStarted, "description": "An Idempotency-Key repeat"}, **CONTROL},
    summary="Start a workflow",
)
def start_workflow(
    body: WorkflowStart,
    request: Request,
    response: Response,
    engine: EngineDep,
    principal: Operator,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    started = engine.start(
        body.definition,
        body.input,
        version=body.version,
        correlation_id=body.correlation_id,
        consistency=body.consistency,
        idempotency_key=idempotency_key,
        principal=principal.key_id,
    )
    audit.note(request, target=started["workflow_id"], definition=started["definition"], created=started["created"])
    response.headers["Location"] = f"{request.url.path}/{started['workflow_id']}"
    if not started["created"]:
        response.status_code = status.HTTP_200_OK
    return started


@router.get("", response_model=WorkflowPage, responses=READ, summary="List workflows, newest (or oldest) first")
def list_workflows(
    engine: EngineDep,
    _: Viewer,
    status_: Annotated[WorkflowStatus | None, Query(alias="status")] = None,
    definition: Annotated[str | None, Query(max_length=200)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    requires_attention: bool = False,
    created_after: Annotated[Instant | None, Query(description="ISO 8601 or epoch seconds, inclusive")] = None,
    created_before: Annotated[Instant | None, Query(description="ISO 8601 or epoch seconds, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^-?\d{1,16}:[A-Za-z0-9_-]{0,64}$",
            description="`next_cursor` of the previous page (asked with the same `order`)",
        ),
    ] = None,
    order: Annotated[
        Literal["newest", "oldest"],
        Query(description="By creation time (attention: when attention began): `newest` first, or `oldest` first"),
    ] = "newest",
) -> Any:
    page = engine.list(
        status=status_,
        definition=definition,
        correlation_id=correlation_id,
        requires_attention=requires_attention,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        cursor=cursor,
        summary=True,
        order=order,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/counts", response_model=WorkflowCounts, responses=READ, summary="Workflows per status")
def count_workflows(engine: EngineDep, services: ServicesDep, _: Viewer) -> Any:
    by_status = engine.counts()
    attention = services.stores.attention_count()
    return {"by_status": by_status, "requires_attention": attention, "total": sum(by_status.values())}


@router.post("/bulk", response_model=BulkResult, responses=CONTROL, summary="Pause, resume, cancel or retry many")
def bulk_control(body: BulkRequest, request: Request, services: ServicesDep, principal: Operator) -> Any:
    engine = services.engine
    if (body.ids is None) == (body.filter is None):
        raise ApiProblem(422, "invalid-request", "give exactly one of `ids` and `filter`")
    truncated = False
    if body.ids is not None:
        ids = list(dict.fromkeys(body.ids))
    else:
        f = body.filter
        assert f is not None
        if not (f.status or f.definition or f.correlation_id or f.requires_attention):
            raise ApiProblem(422, "invalid-request", "a bulk filter needs status, definition, correlation_id "
                             "or requires_attention")  # fmt: skip
        limit = min(body.limit, services.settings.max_bulk)
        page = engine.list(
            status=f.status,
            definition=f.definition,
            correlation_id=f.correlation_id,
            requires_attention=f.requires_attention,
            created_after=f.created_after,
            created_before=f.created_before,
            limit=limit,
            summary=True,
        )
        ids = [item["workflow_id"] for item in page.items]
        truncated = page.next_cursor is not None
    results = [_apply(engine, body.action, wid, principal.key_id, body.reason) for wid in ids]
    ok = sum(1 for r in results if r.ok)
    audit.note(request, target=ids, action=body.action.value, reason=body.reason, succeeded=ok,
               failed=len(results) - ok, by_filter=body.filter is not None)  # fmt: skip
    return BulkResult(
        action=body.action, requested=len(ids), succeeded=ok, failed=len(results) - ok, truncated=truncated,
        results=results,
    )  # fmt: skip


def _apply(engine: EngineClient, action: BulkAction, wid: str, by: str, reason: str | None) -> BulkItem:
    try:
        if action is BulkAction.PAUSE:
            snap = engine.pause(wid, by=by, reason=reason or "")
        elif action is BulkAction.RESUME:
            snap = engine.resume(wid, by=by)
        elif action is BulkAction.CANCEL:
            snap = engine.cancel(wid, by=by, reason=reason or "cancelled")
        else:
            snap = engine.retry_compensation(wid, by=by)
    except Exception as exc:
        problem = to_problem(exc)
        if problem.status >= 500 and problem.code == "internal":
            raise
        error = BulkItemError(status=problem.status, code=problem.code, detail=problem.detail)
        return BulkItem(workflow_id=wid, ok=False, status=None, error=error)
    return BulkItem(workflow_id=wid, ok=True, status=snap["status"], error=None)


@router.get(
    "/{workflow_id}", response_model=WorkflowDetail, responses={**READ, **problems(404)}, summary="One workflow"
)
def get_workflow(workflow_id: WorkflowId, engine: EngineDep, _: Viewer) -> Any:
    return views.workflow_detail(engine.instance(workflow_id))


@router.get(
    "/{workflow_id}/events",
    response_model=list[WorkflowEvent],
    responses={**READ, **problems(404)},
    summary="The workflow's domain events, in order",
)
def workflow_events(
    workflow_id: WorkflowId,
    engine: EngineDep,
    _: Viewer,
    after: Annotated[str | None, Query(pattern=r"^\d{1,16}-\d{1,10}$", description="Stream id to read after")] = None,
) -> Any:
    return [views.workflow_event(e) for e in engine.events(workflow_id, after=after or "-")]


@router.get(
    "/{workflow_id}/consistency",
    response_model=ConsistencyView,
    responses={**READ, **problems(404)},
    summary="Replay the events and compare with the stored state",
)
def workflow_consistency(workflow_id: WorkflowId, engine: EngineDep, _: Viewer) -> Any:
    report = engine.validate_consistency(workflow_id)
    return ConsistencyView(**vars(report))


@router.post("/{workflow_id}/pause", response_model=WorkflowDetail, responses=CONTROL, summary="Pause")
def pause_workflow(
    workflow_id: WorkflowId,
    request: Request,
    engine: EngineDep,
    principal: Operator,
    body: Annotated[ControlReason | None, Body()] = None,
) -> Any:
    reason = body.reason if body else None
    audit.note(request, target=workflow_id, reason=reason)
    engine.pause(workflow_id, by=principal.key_id, reason=reason or "")
    return views.workflow_detail(engine.instance(workflow_id))


@router.post("/{workflow_id}/resume", response_model=WorkflowDetail, responses=CONTROL, summary="Resume")
def resume_workflow(workflow_id: WorkflowId, request: Request, engine: EngineDep, principal: Operator) -> Any:
    audit.note(request, target=workflow_id)
    engine.resume(workflow_id, by=principal.key_id)
    return views.workflow_detail(engine.instance(workflow_id))


@router.post("/{workflow_id}/cancel", response_model=WorkflowDetail, responses=CONTROL, summary="Cancel")
def cancel_workflow(
    workflow_id: WorkflowId,
    request: Request,
    engine: EngineDep,
    principal: Operator,
    body: Annotated[ControlReason | None, Body()] = None,
) -> Any:
    reason = body.reason if body else None
    audit.note(request, target=workflow_id, reason=reason)
    engine.cancel(workflow_id, by=principal.key_id, reason=reason or "cancelled")
    return views.workflow_detail(engine.instance(workflow_id))


@router.post(
    "/{workflow_id}/retry-compensation",
    response_model=WorkflowDetail,
    responses=CONTROL,
    summary="Run failed (or parked) compensations again",
)
def retry_compensation(
    workflow_id: WorkflowId,
    request: Request,
    engine: EngineDep,
    principal: Operator,
    body: Annotated[RetryCompensation | None, Body()] = None,
) -> Any:
    steps = body.steps if body else None
    audit.note(request, target=workflow_id, steps=steps)
    engine.retry_compensation(workflow_id, steps, by=principal.key_id)
    return views.workflow_detail(engine.instance(workflow_id))
