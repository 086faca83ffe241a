"""API keys (admin): list, create (the secret is returned once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from api import audit
from api.auth import key_summary
from api.deps import Admin, ServicesDep
from api.errors import CONTROL, READ
from api.schemas.access import KeyCreate, KeyCreated, KeyView

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=list[KeyView], responses=READ, summary="Every key (never a secret)")
def list_keys(services: ServicesDep, _: Admin) -> Any:
    return [key_summary(k) for k in services.keystore.all()]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=CONTROL,
             summary="Create a key: its secret is in this response only")  # fmt: skip
def create_key(body: KeyCreate, request: Request, services: ServicesDep, principal: Admin) -> Any:
    stored, key = services.keystore.create(body.role, body.name, created_by=principal.key_id)
    audit.note(request, target=stored.key_id, role=body.role.value, name=body.name)
    return {**key_summary(stored), "key": key}


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONTROL, summary="Revoke a key")
def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")], request: Request, services: ServicesDep, _: Admin
) -> Response:
    audit.note(request, target=key_id)
    services.keystore.revoke(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
