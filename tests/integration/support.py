"""Helpers shared by the integration tests: definition builders, event and ledger readers, waits."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from engine.client import EngineClient
from engine.worker.pool import WorkerPool
from tests.handlers import Call, read_ledger

T = TypeVar("T")

STEP = "tests.handlers:step"
UNDO = {"type": "UNDO", "action": "tests.handlers:undo"}
FAST_RETRY = {"max_attempts": 3, "backoff": "LINEAR", "initial_delay": "50ms"}


def step(step_id: str, **fields: Any) -> dict[str, Any]:
    """A step calling ``tests.handlers:step`` with an UNDO compensation and fast retries by default."""
    out: dict[str, Any] = {"id": step_id, "action": STEP, "compensation": UNDO, "retry": FAST_RETRY}
    out.update(fields)
    return out


def define(client: EngineClient, name: str, steps: list[dict[str, Any]], **fields: Any) -> str:
    client.apply_definition({"name": name, "steps": steps, **fields})
    return name


def events(client: EngineClient, wid: str) -> list[dict[str, Any]]:
    return client.events(wid)


def types(evts: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in evts]


def of_type(evts: list[dict[str, Any]], kind: str, step_id: str | None = None) -> list[dict[str, Any]]:
    return [e for e in evts if e["type"] == kind and (step_id is None or e.get("step_id") == step_id)]


def one(evts: list[dict[str, Any]], kind: str, step_id: str | None = None) -> dict[str, Any]:
    found = of_type(evts, kind, step_id)
    assert len(found) == 1, f"expected one {kind} {step_id or ''}, got {len(found)}: {types(evts)}"
    return found[0]


def index_of(evts: list[dict[str, Any]], kind: str, step_id: str | None = None) -> int:
    for i, e in enumerate(evts):
        if e["type"] == kind and (step_id is None or e.get("step_id") == step_id):
            return i
    raise AssertionError(f"no {kind} {step_id or ''} in {types(evts)}")


def ledger(client: EngineClient, wid: str | None = None) -> list[Call]:
    return read_ledger(client.r, client.settings.key_prefix, wid)


def calls(client: EngineClient, wid: str, phase: str = "forward", step_id: str | None = None) -> list[Call]:
    return [c for c in ledger(client, wid) if c.phase == phase and (step_id is None or c.step_id == step_id)]


def applied_keys(client: EngineClient, wid: str) -> dict[str, int]:
    """Idempotency keys of this workflow the (deduplicating) service applied, with calls per key."""
    prefix = client.settings.key_prefix
    applied = client.r.hgetall(f"{prefix}:applied")
    counts = client.r.hgetall(f"{prefix}:effects")
    return {k: int(counts.get(k, 0)) for k, owner in applied.items() if owner == wid}


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def wait_ready(client: EngineClient, pool: WorkerPool, timeout: float = 15.0) -> None:
    """Block until every process of ``pool`` heartbeats (its runtime is up)."""
    pids = {str(p) for p in pool.pids}

    def up() -> bool:
        return pids <= {name.split(":")[1] for name in client.workers()}

    wait_for(up, timeout, f"workers {sorted(pids)} to start")


def let_go(client: EngineClient, wid: str, for_s: float = 10.0) -> bool:
    """True once no worker holds the workflow's lease and no worker will look at it within ``for_s``
    seconds (it is out of the schedule, or in it only for a timer further out, such as a pause's
    deadline). What a "nothing happens next" check waits for instead of a fixed sleep: a worker that
    went on would still hold the lease, and one that meant to come back soon would have said so in
    the schedule."""
    stored = client.repo.load(wid)
    due_ms = client.r.zscore(client.repo.keys.sched, wid)
    fresh = client.r.zscore(client.repo.keys.ready, wid) is not None  # a start no worker has claimed yet
    return stored.lease_until_ms == 0 and not fresh and (due_ms is None or due_ms > (time.time() + for_s) * 1000)


def owner_pid(client: EngineClient, wid: str) -> int | None:
    """Pid of the worker process holding the workflow's lease (owner is ``<host>:<pid>:<rand>``)."""
    owner = client.r.hget(client.repo.keys.state(wid), "owner")
    return int(owner.split(":")[1]) if owner else None


def kill_owner(client: EngineClient, pool: WorkerPool, wid: str) -> int:
    pid = owner_pid(client, wid)
    assert pid in pool.pids, f"owner pid {pid} of {wid} is not one of the pool's {pool.pids}"
    os.kill(pid, signal.SIGKILL)
    return pid


def start(client: EngineClient, name: str, input: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return client.start(name, input or {}, **kwargs)["workflow_id"]
