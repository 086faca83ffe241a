"""An order generator for demos and the waveless bench: submits orders to the waveless intake at the
arrival times of an ``engine.domain.waveless.OrderPattern`` (steady, bursty with a lunch peak, ramp)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.domain.waveless import OrderPattern


class OrderIntake(Protocol):
    """Where orders go (``engine.saga.waveless.WavelessProcessingService``): an order without
    ``order_id`` gets a fresh one; returns their order and entry ids."""

    def submit(self, orders: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]: ...


def generate_orders(
    intake: OrderIntake,
    pattern: OrderPattern,
    *,
    template: Mapping[str, Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
    repeat: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_submit: Callable[[list[dict[str, str]]], None] | None = None,
) -> dict[str, Any]:
    """Submit orders at the pattern's arrival times (``repeat``: over and over until ``stop()``), each a
    copy of ``template`` under a new order id. Orders due together (the generator fell behind) are
    submitted in one call."""
    offsets = pattern.arrivals()
    base = dict(template or {})
    base.pop("order_id", None)  # the intake gives every order its own
    t0 = clock()
    submitted = 0
    cycle = 0
    i = 0
    while offsets and not stop():
        if i >= len(offsets):
            if not repeat:
                break
            cycle += 1
            i = 0
        start = t0 + cycle * pattern.duration_s
        now = clock()
        due = start + offsets[i]
        if due > now:
            sleep(min(due - now, 0.25))
            continue
        j = i
        while j < len(offsets) and j - i < 200 and start + offsets[j] <= now:
            j += 1
        accepted = intake.submit([dict(base) for _ in range(j - i)])
        submitted += len(accepted)
        i = j
        if on_submit is not None:
            on_submit(accepted)
    elapsed = clock() - t0
    return {
        "pattern": pattern.pattern.value,
        "rate": pattern.rate,
        "peak_rate": pattern.peak if pattern.pattern.value != "steady" else None,
        "duration_s": pattern.duration_s,
        "submitted": submitted,
        "elapsed_s": round(elapsed, 3),
        "mean_rate": round(submitted / elapsed, 2) if elapsed > 0 else None,
    }
