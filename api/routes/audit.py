"""The audit log of control actions, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Operator, ServicesDep
from api.errors import READ
from api.schemas.access import AuditPage

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=READ, summary="Control actions: who, what, when, result")
def read_audit(
    services: ServicesDep,
    _: Operator,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,16}-\d{1,10}$")] = None,
    key_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=100, description="e.g. pause_workflow")] = None,
    target: Annotated[str | None, Query(max_length=200, description="A workflow id, service, key id...")] = None,
    failed_only: bool = False,
) -> Any:
    items, nxt = services.audit.read(
        limit=limit, before=cursor, key_id=key_id, action=action, target=target, failed_only=failed_only
    )
    return {"items": items, "next_cursor": nxt}
