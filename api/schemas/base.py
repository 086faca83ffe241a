"""What every model shares: strict request bodies and the RFC 9457 problem. Times are Unix epoch
seconds (floats); durations are seconds unless the name says ``_ms``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

JSONObject = dict[str, Any]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is a stable machine-readable reason."""

    type: str = Field(examples=["urn:wes:problem:illegal-transition"])
    title: str
    status: int
    detail: str
    instance: str
    code: str
    problems: list[str] | None = None
    errors: list[JSONObject] | None = None
    current: str | None = None
    target: str | None = None
