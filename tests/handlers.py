"""Step handlers for the integration tests, run by real worker processes as ``tests.handlers:<fn>``.

Behaviour comes from the workflow input: ``input["plan"][step_id]`` is a dict of knobs.

Forward (``step``):
- ``sleep``: seconds to sleep (after the call is recorded, so a SIGKILL mid-sleep is visible);
  with ``sleep_calls`` only in the first n calls of this step in this workflow.
- ``observe``: record what the stored state of the workflow says while this step runs (status of
  this step in the stored snapshot and the stored version) in ``<prefix>:observed``.
- ``fail_times``: fail the first n attempts with a retryable StepError.
- ``fail: "final"``: fail with NonRetryableStepError.
- ``error_type``: raise the exception class of that name defined here (retryable_errors tests);
  with ``error_times`` only for the first n attempts.
- ``late_effect``: after the sleep, apply an effect (RPUSH ``<prefix>:late``): one applied after its
  attempt timed out is visible, with when it happened.

``async_step`` is ``step`` as an ``async def`` handler (it sleeps with ``asyncio.sleep``, so a stopped
attempt is cancelled mid-sleep, records when in ``<prefix>:cancelled``, and never reaches its late
effect).

Compensation (``undo``, ``alternative``):
- ``undo_sleep``: seconds to sleep; with ``undo_sleep_calls`` only in the first n calls.
- ``undo_fail_times``: fail the first n calls of the undo of this step in this workflow (counted in
  Redis, so an operator's retry later sees the count go on).
- ``undo_fail: "always"``: always fail.
- ``alt_fail: "always"``: the alternative fails too.

Every call is recorded in Redis so a test can assert exactly what ran, in which order, across
processes: RPUSH to ``<prefix>:ledger`` of ``"{workflow_id}|{phase}|{step_id}|{attempt}|{key}"``,
HINCRBY ``<prefix>:effects`` by idempotency key (calls per key), and HSETNX ``<prefix>:applied`` by
idempotency key (a service that deduplicates by key applies the effect once per key).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import redis

from engine import EngineSettings, NonRetryableStepError, StepContext, StepError
from engine.persistence.workflow_repository import WorkflowRepository

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    return _client


def _prefix() -> str:
    return os.environ.get("WES_KEY_PREFIX", "wes")


# ---------------------------------------------------------------------------------- test-side access
def ledger_key(prefix: str) -> str:
    return f"{prefix}:ledger"


def effects_key(prefix: str) -> str:
    return f"{prefix}:effects"


def applied_key(prefix: str) -> str:
    return f"{prefix}:applied"


@dataclass(frozen=True)
class Call:
    workflow_id: str
    phase: str
    step_id: str
    attempt: int
    key: str


def read_ledger(r: redis.Redis, prefix: str, workflow_id: str | None = None) -> list[Call]:
    """Every recorded handler call, in the order they happened (optionally of one workflow)."""
    out = []
    for raw in r.lrange(ledger_key(prefix), 0, -1):
        wid, phase, step_id, attempt, key = raw.split("|", 4)
        if workflow_id is None or wid == workflow_id:
            out.append(Call(wid, phase, step_id, int(attempt), key))
    return out


# ---------------------------------------------------------------------------------- errors by name
class InventoryBusy(Exception):
    """A transient error a definition may list in ``retryable_errors``."""


class PaymentDeclined(Exception):
    """An error a definition does not list as retryable."""


ERRORS = {cls.__name__: cls for cls in (InventoryBusy, PaymentDeclined)}


# ---------------------------------------------------------------------------------- handlers
def _plan(ctx: StepContext) -> dict:
    return dict((ctx.input.get("plan") or {}).get(ctx.step_id) or {})


def _record(ctx: StepContext, phase: str) -> int:
    """Record the call; returns how many times this phase of this step ran in this workflow."""
    p = _prefix()
    r = _redis()
    pipe = r.pipeline(transaction=False)
    pipe.rpush(ledger_key(p), f"{ctx.workflow_id}|{phase}|{ctx.step_id}|{ctx.attempt}|{ctx.idempotency_key}")
    pipe.hincrby(effects_key(p), ctx.idempotency_key, 1)
    pipe.hsetnx(applied_key(p), ctx.idempotency_key, ctx.workflow_id)
    pipe.hincrby(f"{p}:calls", f"{ctx.workflow_id}|{phase}|{ctx.step_id}", 1)
    return int(pipe.execute()[-1])


def observed_key(prefix: str) -> str:
    return f"{prefix}:observed"


def step(ctx: StepContext) -> dict:
    plan = _plan(ctx)
    calls = _record(ctx, "forward")
    if plan.get("observe"):
        _observe(ctx)
    if plan.get("sleep") and calls <= int(plan.get("sleep_calls", 10**6)):
        time.sleep(float(plan["sleep"]))
    return _finish(ctx, plan)


async def async_step(ctx: StepContext) -> dict:
    plan = _plan(ctx)
    calls = _record(ctx, "forward")
    if plan.get("sleep") and calls <= int(plan.get("sleep_calls", 10**6)):
        try:
            await asyncio.sleep(float(plan["sleep"]))
        except asyncio.CancelledError:
            _redis().rpush(cancelled_key(_prefix()), f"{ctx.workflow_id}|{ctx.step_id}|{ctx.attempt}|{time.time()}")
            raise
    return _finish(ctx, plan)


def _finish(ctx: StepContext, plan: dict) -> dict:
    if plan.get("late_effect"):
        _redis().rpush(late_key(_prefix()), f"{ctx.workflow_id}|{ctx.step_id}|{ctx.attempt}|{time.time()}")
    if plan.get("fail") == "final":
        raise NonRetryableStepError(f"{ctx.step_id} failed for good")
    if ctx.attempt <= int(plan.get("fail_times", 0)):
        raise StepError(f"{ctx.step_id} transient failure on attempt {ctx.attempt}")
    if plan.get("error_type") and ctx.attempt <= int(plan.get("error_times", 10**6)):
        raise ERRORS[plan["error_type"]](f"{ctx.step_id}: {plan['error_type']} on attempt {ctx.attempt}")
    return {f"{ctx.step_id}_done": ctx.attempt}


def late_key(prefix: str) -> str:
    return f"{prefix}:late"


def cancelled_key(prefix: str) -> str:
    return f"{prefix}:cancelled"


def read_late_effects(r: redis.Redis, prefix: str, workflow_id: str, key: str = "late") -> list[tuple[str, int, float]]:
    """(step, attempt, when) of every late effect a step applied in this workflow (``key="cancelled"``:
    of every async attempt cancelled mid-sleep)."""
    out = []
    for raw in r.lrange(f"{prefix}:{key}", 0, -1):
        wid, step_id, attempt, at = raw.split("|")
        if wid == workflow_id:
            out.append((step_id, int(attempt), float(at)))
    return out


def _observe(ctx: StepContext) -> None:
    p = _prefix()
    r = _redis()
    # What is persisted: the last snapshot plus the events committed after it.
    settings = EngineSettings(redis_url=os.environ["REDIS_URL"], key_prefix=p)
    stored = WorkflowRepository(r, settings).load(ctx.workflow_id)
    status = stored.instance.step(ctx.step_id).status.value
    r.hset(observed_key(p), f"{ctx.workflow_id}|{ctx.step_id}", f"{status}|{stored.version}")


def undo(ctx: StepContext) -> dict:
    plan = _plan(ctx)
    calls = _record(ctx, "compensation")
    if plan.get("undo_sleep") and calls <= int(plan.get("undo_sleep_calls", 10**6)):
        time.sleep(float(plan["undo_sleep"]))
    if plan.get("undo_fail") == "always":
        raise StepError(f"undo of {ctx.step_id} failed")
    if calls <= int(plan.get("undo_fail_times", 0)):
        raise StepError(f"undo of {ctx.step_id} failed on call {calls}")
    return {"undone": ctx.step_id}


def alternative(ctx: StepContext) -> dict:
    plan = _plan(ctx)
    _record(ctx, "alternative")
    if plan.get("alt_fail") == "always":
        raise StepError(f"alternative of {ctx.step_id} failed")
    return {"alternative": ctx.step_id}


def custom_backoff(retry_number: int, initial_delay: float, max_delay: float) -> float:
    """A CUSTOM backoff whose shape no built-in strategy has: 3x, 1x, 2x initial, repeating."""
    return initial_delay * (3, 1, 2)[(retry_number - 1) % 3]
