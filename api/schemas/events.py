"""The live feed of domain events."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.base import JSONObject


class FeedEvent(BaseModel):
    id: str = Field(description="Feed stream id: the SSE id and the `after` cursor")
    workflow_id: str | None
    version: int
    type: str
    at: float | None
    data: JSONObject


class FeedPage(BaseModel):
    items: list[FeedEvent]
    last_id: str | None = Field(description="Pass as `after` to read newer events")
