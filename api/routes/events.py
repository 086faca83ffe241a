"""The live feed: domain events of every workflow (and breaker events), as JSON pages or as
Server-Sent Events, filtered by workflow or type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import ServicesDep, Viewer
from api.errors import READ, not_found, problems
from api.schemas.events import FeedPage
from engine import event_types

router = APIRouter(prefix="/events", tags=["events"])
StreamId = Annotated[str | None, Query(pattern=r"^\d{1,16}-\d{1,10}$", description="Stream id to read after")]
WorkflowFilter = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Only this workflow (read from its own stream: ids are its)"),
]
EventType = StrEnum("EventType", {name: name for name in event_types()})  # type: ignore[misc]
"""The domain events' names: an unknown one in a filter is a 422 that lists them, not an empty feed."""
TypeFilter = Annotated[list[EventType] | None, Query(alias="type", description="Only these event types (repeatable)")]
RETRY_MS = 2000


async def source(services: ServicesDep, workflow_id: WorkflowFilter = None) -> str | None:
    """The workflow whose own stream to read, or None for the global feed (404 for an unknown workflow)."""
    if workflow_id is not None and not await services.stores.feed.workflow_exists(workflow_id):
        raise not_found(f"no workflow with id {workflow_id!r}")
    return workflow_id


Source = Annotated[str | None, Depends(source)]


@router.get("", response_model=FeedPage, responses={**READ, **problems(404)}, summary="Recent domain events")
def recent_events(
    services: ServicesDep,
    _: Viewer,
    workflow: Source,
    after: StreamId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    types: TypeFilter = None,
) -> Any:
    """Without `after`: the newest `limit` events (oldest first). With it: the events after it. Poll
    with `after=last_id` to follow."""
    items, last = services.stores.feed.recent(workflow, after=after, limit=limit, types=set(types or ()))
    return {"items": [e.as_dict() for e in items], "last_id": last or after}


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={**READ, **problems(404)},
    summary="Live feed (Server-Sent Events); resumes from Last-Event-ID",
)
async def stream_events(
    request: Request,
    services: ServicesDep,
    _: Viewer,
    workflow: Source,
    types: TypeFilter = None,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,16}-\d{1,10}$")] = None,
    after: StreamId = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000, description="Close after this many")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Each event: `id` = stream id, `event` = the domain event type, `data` = the event as JSON
    (the `FeedEvent` shape). Without Last-Event-ID or `after`, only events from now on."""
    sent = 0
    yield ServerSentEvent(comment="connected", retry=RETRY_MS)
    async for event in services.stores.feed.follow(
        workflow,
        last_id=last_event_id or after or "$",
        block_ms=services.settings.sse_block_ms,
        types=set(types or ()),
    ):
        if event is None:
            if await request.is_disconnected():
                return
            continue
        yield ServerSentEvent(id=event.id, event=event.type or "event", data=event.as_dict())
        sent += 1
        if max_events is not None and sent >= max_events:
            return
