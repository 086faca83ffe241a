"""Python handlers of the sample order-fulfillment saga.

Each forward step returns what it did (ids derived from the idempotency key, so a repeat returns
the same answer) and each has an undo. Tell a run to fail through its input:

- ``fail_at: <step>``: that step fails for good (non-retryable): the saga compensates.
- ``flaky: {<step>: n}``: that step fails its first n attempts (retryable), then succeeds.
- ``slow: {<step>: seconds}``: that step sleeps first (try it against its timeout).
- ``fail_compensation: [<step>, ...]``: the undo of those steps fails: the saga ends COMPENSATED
  with ``requires_attention``.
"""

from __future__ import annotations

import hashlib
import time

from engine import NonRetryableStepError, StepContext, StepError


def _ref(ctx: StepContext, kind: str) -> str:
    return f"{kind}-{hashlib.sha1(ctx.idempotency_key.encode()).hexdigest()[:10]}"


def _behave(ctx: StepContext) -> None:
    data = ctx.input
    slow = (data.get("slow") or {}).get(ctx.step_id)
    if slow:
        time.sleep(float(slow))
    if data.get("fail_at") == ctx.step_id:
        raise NonRetryableStepError(f"{ctx.step_id} refused (told to fail by fail_at)")
    flaky = int((data.get("flaky") or {}).get(ctx.step_id, 0))
    if ctx.attempt <= flaky:
        raise StepError(f"{ctx.step_id} transient failure {ctx.attempt}/{flaky}")


def _undo(ctx: StepContext) -> dict:
    if ctx.step_id in (ctx.input.get("fail_compensation") or []):
        raise StepError(f"undo of {ctx.step_id} failed (told to by fail_compensation)")
    return {"undone": ctx.step_id}


def reserve_inventory(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"reservation_id": _ref(ctx, "res"), "sku": ctx.input.get("sku"), "quantity": ctx.input.get("quantity")}


def release_inventory(ctx: StepContext) -> dict:
    return _undo(ctx)


def allocate_location(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"location_id": f"LOC-{_ref(ctx, 'a')[-4:].upper()}"}


def free_location(ctx: StepContext) -> dict:
    return _undo(ctx)


def pick(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"pick_id": _ref(ctx, "pick"), "picked_from": ctx.input.get("location_id")}


def return_to_stock(ctx: StepContext) -> dict:
    return _undo(ctx)


def pack(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"package_id": _ref(ctx, "pkg")}


def unpack(ctx: StepContext) -> dict:
    return _undo(ctx)


def ship(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"tracking_number": _ref(ctx, "trk").upper()}


def cancel_shipment(ctx: StepContext) -> dict:
    return _undo(ctx)


def charge(ctx: StepContext) -> dict:
    _behave(ctx)
    return {"payment_id": _ref(ctx, "pay"), "amount": ctx.input.get("amount")}


def refund(ctx: StepContext) -> dict:
    return _undo(ctx)
