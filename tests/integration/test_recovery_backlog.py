"""Recovery does not queue behind a backlog: with 500 fresh sagas waiting, the sagas of a SIGKILLed worker
resume within 3x the lease (real worker processes, a real SIGKILL). Before fair claiming they waited
until every fresh saga created before their lease expired had been claimed (issue 11: p50 25-44 s)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine.client import EngineClient
from tests.integration.support import define, step, wait_for, wait_ready

pytestmark = pytest.mark.timeout(90)

SAGAS = 500
STEP_S = 0.05
LEASE_S = 2.0
CAPACITY = 4
"""Sagas a worker runs at once (and claims per round trip), small so the backlog outlasts the test:
3 steps of 50 ms each, at most 4 sagas per worker, is at least 9 s of work for the two survivors."""


def held_by(client: EngineClient, wids: list[str]) -> dict[int, list[str]]:
    """Worker pid -> the sagas whose lease it holds (owner ``<host>:<pid>:<rand>``, lease not handed back)."""
    pipe = client.r.pipeline(transaction=False)
    for wid in wids:
        pipe.hmget(client.repo.keys.state(wid), "owner", "lease_until")
    out: dict[int, list[str]] = {}
    for wid, (owner, lease_until) in zip(wids, pipe.execute(), strict=True):
        if owner and int(float(lease_until or 0)) > 0:
            out.setdefault(int(owner.split(":")[1]), []).append(wid)
    return out


def resumed_at(client: EngineClient, wid: str, after: float) -> float | None:
    """When the saga's first event after ``after`` happened, if it did."""
    return next((e["at"] for e in client.events(wid) if e["at"] > after), None)


def test_a_killed_workers_sagas_resume_within_three_leases_behind_500_queued(client, workers):
    plan = {sid: {"sleep": STEP_S} for sid in ("a", "b", "c")}
    define(client, "backlog", [step("a"), step("b"), step("c")])
    pool = workers(3, lease_seconds=LEASE_S, claim_batch=CAPACITY, max_in_flight=CAPACITY, step_threads=CAPACITY)
    wait_ready(client, pool)
    wids = [client.start("backlog", {"plan": plan})["workflow_id"] for _ in range(SAGAS)]

    def victim() -> int | None:
        holders = {pid: held for pid, held in held_by(client, wids).items() if pid in pool.pids}
        return max(holders, key=lambda pid: len(holders[pid])) if len(holders) == len(pool.pids) else None

    pid = wait_for(victim, 20, "every worker to hold sagas")
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    orphans = held_by(client, wids).get(pid, [])
    assert orphans, "the killed worker held no saga"

    def all_resumed() -> dict[str, float] | None:
        seen = {wid: resumed_at(client, wid, killed_at) for wid in orphans}
        return seen if all(at is not None for at in seen.values()) else None

    resumed = wait_for(all_resumed, 10 * LEASE_S, f"the {len(orphans)} sagas of the killed worker to resume")
    waiting = client.r.zcard(client.repo.keys.by_status("CREATED"))  # fresh sagas no worker has started

    lag = max(resumed.values()) - killed_at
    assert lag < 3 * LEASE_S, f"kill -> resume took {lag:.2f} s (lease {LEASE_S} s)"
    assert waiting > 0, "the backlog was gone before they resumed: the test proved nothing"
