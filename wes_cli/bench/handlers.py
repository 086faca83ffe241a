"""Step handlers of ``wes bench --step-latency``: a step that waits as a service call does, without using
the CPU. The saga's input carries the wait (``latency_s``), so one definition serves every latency."""

from __future__ import annotations

import asyncio
import time

from engine.ports import StepContext

LATENCY_FIELD = "latency_s"
SYNC_HANDLER = "wes_cli.bench.handlers:sleep_step"
ASYNC_HANDLER = "wes_cli.bench.handlers:async_sleep_step"
HANDLERS = {"sync": SYNC_HANDLER, "async": ASYNC_HANDLER}
"""``--handler`` -> the step's action: a plain ``def`` (the worker runs it on a thread) or an ``async def``
(the worker awaits it on its event loop)."""


def sleep_step(ctx: StepContext) -> None:
    time.sleep(float(ctx.input[LATENCY_FIELD]))


async def async_sleep_step(ctx: StepContext) -> None:
    await asyncio.sleep(float(ctx.input[LATENCY_FIELD]))
