"""Workflow definitions: versions, the stored document, apply and validate."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.base import JSONObject
from engine import ConsistencyLevel


class DefinitionSummary(BaseModel):
    name: str
    version: int
    active: bool
    description: str
    consistency: ConsistencyLevel
    timeout: float
    trigger: JSONObject
    steps: int


class DefinitionVersions(BaseModel):
    name: str
    versions: list[DefinitionSummary]
    latest_active: int | None


class DefinitionView(BaseModel):
    name: str
    version: int
    active: bool
    description: str
    consistency: ConsistencyLevel
    timeout: float
    trigger: JSONObject
    validation_rules: JSONObject
    defaults: JSONObject
    resources: list[str]
    steps: list[JSONObject]


class DefinitionApplied(BaseModel):
    definition: str = Field(description="name:version")
    name: str
    version: int
    created: bool = Field(description="False: the same content was already the latest version")
    active: bool


class DefinitionValidation(BaseModel):
    valid: bool
    name: str | None
    problems: list[str]
