"""Fair claiming against a real Redis: what is due in ``sched`` (retries, timers, wakes, leases of dead
workers) is claimed before the ``ready`` backlog of fresh starts, which is claimed oldest first; every
claimed id comes with the time it was due; a dispatcher with free capacity stays registered as idle."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.client import EngineClient
from engine.persistence.dispatch import Claim, Dispatch
from engine.persistence.keys import Keys
from tests.integration.support import define, step

LATER_MS = 3_600_000
"""Claims below pass their own clock an hour ahead: leases and due times are then exact and no real
time has to pass."""


def start_many(client: EngineClient, n: int) -> list[str]:
    """``n`` fresh starts, in the order ``ready`` serves them (by creation ms, then id)."""
    ids = [client.start("fair")["workflow_id"] for _ in range(n)]
    return sorted(ids, key=lambda wid: (created_ms(client, wid), wid))


def created_ms(client: EngineClient, wid: str) -> int:
    return int(client.instance(wid).created_at * 1000)


@pytest.fixture
def fair(client: EngineClient) -> tuple[EngineClient, Dispatch, Keys]:
    define(client, "fair", [step("a")])
    return client, client.engine.stores.dispatch, client.engine.stores.keys


@pytest.mark.unit
def test_claim_reply_pairs_each_id_with_its_due_time() -> None:
    claim = Dispatch._claim_result([2, 1, "w1", "1767225600123", "w2", "1.7672256e+12"])
    assert claim == Claim(["w1", "w2"], True, None, [1767225600123, 1767225600000])
    assert Dispatch._claim_result([0, "1767225600500"]) == Claim([], False, 1767225600500, [])
    assert Dispatch._claim_result([0, ""]) == Claim([], False, None, [])


def test_a_due_retry_and_an_expired_lease_go_before_an_older_fresh_backlog(fair) -> None:
    client, d, keys = fair
    x, y = start_many(client, 2)
    assert client.r.zcard(keys.sched) == 0 and client.r.zcard(keys.ready) == 2  # starts wait in ready
    t = int(time.time() * 1000) + LATER_MS

    first = d.claim("d1", t, t + 10_000, 2, 0)
    assert first.ids == [x, y] and first.due_ms == [created_ms(client, x), created_ms(client, y)]
    held = d.acquire(first.ids, "worker-1", t + 10_000)
    backlog = start_many(client, 6)  # fresh starts, all created before y's retry and x's lease fall due
    assert d.release(y, held[y].fence, t + 5_000)  # y waits for a retry at t + 5 s; x's worker dies

    claim = d.claim("d2", t + 20_000, t + 30_000, 4, 0)

    assert claim.ids == [y, x, *backlog[:2]], "due work first (lowest due time first), then the oldest fresh"
    assert claim.due_ms == [t + 5_000, t + 10_000, *(created_ms(client, w) for w in backlog[:2])]
    assert claim.more
    assert client.r.zrange(keys.ready, 0, -1) == backlog[2:]
    assert {w: client.r.zscore(keys.sched, w) for w in claim.ids} == dict.fromkeys(claim.ids, t + 30_000)

    rest = d.claim("d2", t + 20_001, t + 30_000, 10, 0)
    assert rest.ids == backlog[2:] and not rest.more
    empty = d.claim("d2", t + 20_002, t + 30_000, 10, 0)
    assert empty.ids == [] and empty.next_due_ms == t + 30_000  # the first lease to expire


def test_an_id_both_due_and_ready_is_claimed_once(fair) -> None:
    client, d, keys = fair
    (wid,) = start_many(client, 1)
    t = int(time.time() * 1000) + LATER_MS
    client.r.zadd(keys.sched, {wid: t - 1})  # made runnable again by a wake before any claim took it

    claim = d.claim("d1", t, t + 10_000, 5, 0)

    assert claim.ids == [wid] and claim.due_ms == [t - 1]
    assert client.r.zcard(keys.ready) == 0 and d.claim("d1", t, t + 10_000, 5, 0).ids == []


def test_cancelling_a_created_saga_takes_it_out_of_ready(fair) -> None:
    client, d, keys = fair
    gone, kept = start_many(client, 2)

    assert client.cancel(gone)["status"] == "CANCELLED"

    assert client.r.zrange(keys.ready, 0, -1) == [kept] and client.r.zscore(keys.sched, gone) is None
    t = int(time.time() * 1000) + LATER_MS
    assert d.claim("d1", t, t + 10_000, 5, 0).ids == [kept]


def test_tick_and_exit_see_fresh_starts(fair) -> None:
    client, d, keys = fair
    (wid,) = start_many(client, 1)
    d.clear_queued_flag()  # the start asked for a dispatch job; nobody runs it here
    now = int(time.time() * 1000)
    assert client.r.zcard(keys.sched) == 0

    assert d.tick(now), "a fresh start is work: the ticker asks for a dispatch job"
    assert not d.may_exit("d1", now), "a dispatcher may not leave a fresh start behind"

    assert d.claim("d1", now, now + 60_000, 5, 0).ids == [wid]
    d.clear_queued_flag()
    assert not d.tick(now) and d.may_exit("d1", now)  # held, its lease not expired: nothing to do


def test_a_dispatcher_with_free_capacity_stays_registered_as_idle(fair) -> None:
    client, d, keys = fair
    start_many(client, 3)
    t = int(time.time() * 1000) + LATER_MS

    claim = d.claim("d1", t, t + 10_000, 2, t + 1_500)
    assert len(claim.ids) == 2 and client.r.zscore(keys.idle, "d1") == t + 1_500  # registered with ids

    at_capacity = d.claim("d1", t, t + 10_000, 1, 0)
    assert len(at_capacity.ids) == 1 and client.r.zscore(keys.idle, "d1") is None

    nothing = d.claim("d1", t, t + 10_000, 5, t + 2_000)
    assert nothing.ids == [] and client.r.zscore(keys.idle, "d1") == t + 2_000


def test_the_asyncio_claim_is_the_same_call(fair) -> None:
    client, d, _keys = fair
    ids = start_many(client, 3)
    t = int(time.time() * 1000) + LATER_MS

    claim = asyncio.run(d.claim_async("d1", t, t + 10_000, 2, 0))

    assert claim.ids == ids[:2] and claim.more and claim.due_ms == [created_ms(client, w) for w in ids[:2]]


def test_the_runnable_backlog_counts_fresh_starts(fair) -> None:
    client, d, _keys = fair
    ids = start_many(client, 3)
    now = int(time.time() * 1000)
    d.claim("d1", now, now + 60_000, 1, 0)  # one held (lease in a minute), two fresh

    backlog = client.engine.stores.metrics.backlog(now + 1)

    assert (backlog.runnable, backlog.scheduled) == (2, 3)
    assert backlog.oldest_due_ms == created_ms(client, ids[1])
