"""The six warehouse services, their operations and what each operation returns (pure functions)."""

from __future__ import annotations

import hashlib
from typing import Any

SERVICES: dict[str, tuple[str, str]] = {
    "inventory": ("reserve", "release"),
    "location": ("allocate", "free"),
    "picking": ("pick", "unpick"),
    "packing": ("pack", "unpack"),
    "shipping": ("ship", "cancel"),
    "payment": ("charge", "refund"),
}
"""service -> (forward operation, its undo)."""

ID_FIELDS: dict[str, str] = {
    "reserve": "reservation_id",
    "allocate": "allocation_id",
    "pick": "pick_id",
    "pack": "package_id",
    "ship": "tracking_number",
    "charge": "payment_id",
}
"""forward operation -> the field of its result that identifies what it created (an undo's ``of``)."""

DEFAULT_STOCK = 1_000_000
DEFAULT_SKU = "default"


class InputError(ValueError):
    """The step's input cannot be served (a business refusal: 422)."""


def operations(service: str) -> tuple[str, str]:
    return SERVICES[service]


def is_undo(service: str, operation: str) -> bool:
    return SERVICES[service][1] == operation


def deterministic_id(service: str, operation: str, key: str) -> str:
    """40 hex digits derived from (service, operation, idempotency key): a repeat gets the same ids."""
    return hashlib.sha256(f"{service}|{operation}|{key}".encode()).hexdigest()[:40]


def quantity_of(data: dict[str, Any]) -> int:
    quantity = data.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InputError(f"input.quantity must be a positive integer, got {quantity!r}")
    return quantity


def sku_of(data: dict[str, Any]) -> str:
    sku = data.get("sku", DEFAULT_SKU)
    if not isinstance(sku, str) or not sku:
        raise InputError(f"input.sku must be a non-empty string, got {sku!r}")
    return sku


def amount_of(data: dict[str, Any]) -> int | float:
    amount = data.get("amount", 0)
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount != amount or amount < 0:
        raise InputError(f"input.amount must be a number >= 0, got {amount!r}")
    return amount


def forward_result(service: str, operation: str, key: str, data: dict[str, Any]) -> dict[str, Any]:
    """The result of a forward operation (raises :class:`InputError` for unusable input)."""
    h = deterministic_id(service, operation, key)
    tag = h[:12].upper()
    if operation == "reserve":
        return {"reservation_id": f"RSV-{tag}", "sku": sku_of(data), "quantity": quantity_of(data)}
    if operation == "allocate":
        aisle, bay = int(h[12:14], 16) % 20 + 1, int(h[14:16], 16) % 50 + 1
        return {"allocation_id": f"ALC-{tag}", "location": f"A{aisle:02d}-B{bay:02d}"}
    if operation == "pick":
        return {"pick_id": f"PCK-{tag}", "picked": quantity_of(data)}
    if operation == "pack":
        return {"package_id": f"PKG-{tag}"}
    if operation == "ship":
        return {"tracking_number": f"1ZSIM{h[:16].upper()}"}
    if operation == "charge":
        return {"payment_id": f"PAY-{tag}", "amount": amount_of(data)}
    raise KeyError(operation)


def undo_result(service: str, of: str | None) -> dict[str, Any]:
    """The result of an undo: which forward operation it undid and the id of what it undid (or None)."""
    return {"undone": SERVICES[service][0], "of": of}


def id_in(service: str, output: Any) -> str | None:
    """The forward's id in a forward result (an undo's ``output``), if there is one."""
    if isinstance(output, dict):
        value = output.get(ID_FIELDS[SERVICES[service][0]])
        if isinstance(value, str) and value:
            return value
    return None


def refused(operation: str, data: dict[str, Any]) -> bool:
    """``input.refuse`` names this operation (a string, or a list of names): a forced business refusal."""
    refuse = data.get("refuse")
    if isinstance(refuse, str):
        return refuse == operation
    if isinstance(refuse, list):
        return operation in refuse
    return False
