"""Each consistency level's promise on real workers, and replay == stored state."""

from __future__ import annotations

import pytest

from engine.errors import ConsistencyUnavailable
from tests.handlers import observed_key
from tests.integration.support import (
    applied_keys,
    calls,
    define,
    events,
    kill_owner,
    of_type,
    one,
    start,
    step,
    wait_for,
    wait_ready,
)

STEPS = ["a", "b", "c", "d"]


def observed(client, wid: str) -> dict[str, tuple[str, int]]:
    """What the stored state said while each step ran: (that step's stored status, stored version)."""
    raw = client.r.hgetall(observed_key(client.settings.key_prefix))
    out = {}
    for field, value in raw.items():
        owner, step_id = field.split("|")
        if owner == wid:
            status, version = value.split("|")
            out[step_id] = (status, int(version))
    return out


def assert_replays(client, wid: str) -> None:
    report = client.validate_consistency(wid)
    assert report.consistent, report.differences
    versions = client.repo.event_versions(wid)
    assert versions == list(range(1, len(versions) + 1))
    assert [e["version"] for e in events(client, wid)] == versions
    assert report.stored_version == len(versions) == client.get(wid)["version"]


def test_eventual_persists_lazily_and_at_least_once_before_each_step(client, workers):
    plan = {"plan": {s: {"observe": True} for s in STEPS}}
    define(client, "lazy", [step(s) for s in STEPS], consistency="EVENTUAL")
    define(client, "eager", [step(s) for s in STEPS], consistency="AT_LEAST_ONCE")
    workers(1)

    lazy = start(client, "lazy", plan)
    eager = start(client, "eager", plan)
    assert client.wait(lazy, 20)["status"] == "COMPLETED"
    assert client.wait(eager, 20)["status"] == "COMPLETED"

    # EVENTUAL: nothing was committed while the steps ran; the stored state stayed the created one.
    assert observed(client, lazy) == {s: ("PENDING", 1) for s in STEPS}
    # AT_LEAST_ONCE: each step's start was committed before the step ran (one commit per step).
    seen = observed(client, eager)
    assert {s: status for s, (status, _) in seen.items()} == {s: "RUNNING" for s in STEPS}
    versions = [seen[s][1] for s in STEPS]
    assert versions == sorted(set(versions)), "each step must see a newer stored version"
    # Both end with the same events, and the stream replays to the stored snapshot.
    assert [e["type"] for e in events(client, lazy)] == [e["type"] for e in events(client, eager)]
    assert_replays(client, lazy)
    assert_replays(client, eager)


def kill_mid_step(client, workers, name: str, consistency: str) -> tuple[str, int]:
    define(client, name, [step("a"), step("b"), step("c")], consistency=consistency)
    pool = workers(2)
    wait_ready(client, pool)
    wid = start(client, name, {"plan": {"b": {"sleep": 2, "sleep_calls": 1}}})
    wait_for(lambda: calls(client, wid, step_id="b"), 10, "step b to start")
    killed = kill_owner(client, pool, wid)
    assert client.wait(wid, 15)["status"] == "COMPLETED"
    return wid, killed


def test_at_least_once_reruns_an_interrupted_step_with_a_new_key(client, workers):
    wid, _ = kill_mid_step(client, workers, "alo-kill", "AT_LEAST_ONCE")

    runs = calls(client, wid, step_id="b")
    assert len(runs) == 2
    assert runs[0].key != runs[1].key, "AT_LEAST_ONCE promises no deduplication key"
    b_keys = {k: n for k, n in applied_keys(client, wid).items() if k.startswith(f"{wid}:b")}
    assert len(b_keys) == 2, "a deduplicating service saw two different requests: the effect may double"
    assert len(calls(client, wid, step_id="a")) == 1
    assert len(calls(client, wid, step_id="c")) == 1
    recovered = of_type(events(client, wid), "StepStarted", "b")[-1]
    assert recovered["recovered"] is True
    assert_replays(client, wid)


def test_exactly_once_reruns_an_interrupted_step_with_the_same_key(client, workers):
    wid, _ = kill_mid_step(client, workers, "eo-kill", "EXACTLY_ONCE")

    runs = calls(client, wid, step_id="b")
    assert [r.key for r in runs] == [f"{wid}:b", f"{wid}:b"]
    # The service got the request twice with one key, so it applied the effect once.
    assert applied_keys(client, wid) == {f"{wid}:a": 1, f"{wid}:b": 2, f"{wid}:c": 1}
    assert [c.step_id for c in calls(client, wid)] == ["a", "b", "b", "c"]
    assert_replays(client, wid)


def test_strict_sagas_on_one_resource_never_interleave(strict_engine):
    client = strict_engine.client
    define(
        client,
        "strict-pick",
        [step("a"), step("b")],
        consistency="STRICT",
        resources=["sku:{sku}"],
    )
    pool = strict_engine.workers(2)
    wait_ready(client, pool)

    first = start(client, "strict-pick", {"sku": "A", "plan": {"a": {"sleep": 0.8}}})
    wait_for(lambda: calls(client, first, step_id="a"), 10, "the first saga to start")
    second = start(client, "strict-pick", {"sku": "A"})
    other = start(client, "strict-pick", {"sku": "B", "plan": {"a": {"sleep": 0.3}}})
    for wid in (first, second, other):
        assert client.wait(wid, 20)["status"] == "COMPLETED"

    e1, e2, e3 = events(client, first), events(client, second), events(client, other)
    done1 = one(e1, "WorkflowCompleted")["at"]
    waiting = of_type(e2, "ResourceLockWaiting")
    assert waiting and waiting[0]["holder"] == first and waiting[0]["resources"] == ["sku:A"]
    assert one(e2, "WorkflowStarted")["at"] >= done1
    assert min(e["at"] for e in of_type(e2, "StepStarted")) >= done1
    assert [c.workflow_id for c in calls(client, second)] == [second, second]
    # A saga on another resource is not held up by the lock.
    assert one(e3, "StepStarted", "a")["at"] < done1
    assert client.r.keys(f"{client.settings.key_prefix}:lock:*") == []
    for wid in (first, second, other):
        assert_replays(client, wid)


def test_strict_start_is_refused_without_fsync_per_write(client):
    define(client, "strict-refused", [step("a")], consistency="STRICT", resources=["sku:{sku}"])
    define(client, "relaxed", [step("a")])

    with pytest.raises(ConsistencyUnavailable, match="appendfsync always") as info:
        client.start("strict-refused", {"sku": "A"})
    assert "appendfsync everysec" in str(info.value)
    with pytest.raises(ConsistencyUnavailable):
        client.start("relaxed", {}, consistency="STRICT")
    assert client.list().items == []


def test_replay_equals_stored_state_for_every_outcome(client, workers):
    define(client, "replayed", [step("a"), step("b"), step("c")])
    created_cancelled = start(client, "replayed")
    client.cancel(created_cancelled)
    workers(1)

    completed = start(client, "replayed")
    compensated = start(client, "replayed", {"plan": {"c": {"fail": "final"}, "b": {"undo_fail_times": 1}}})
    retried = start(client, "replayed", {"plan": {"a": {"fail_times": 2}}})
    cancelled = start(client, "replayed", {"plan": {"b": {"sleep": 0.5}}})
    wait_for(lambda: calls(client, cancelled, step_id="b"), 10, "step b to start")
    client.cancel(cancelled)
    outcomes = {completed: "COMPLETED", compensated: "COMPENSATED", retried: "COMPLETED", cancelled: "COMPENSATED"}
    for wid, status in outcomes.items():
        assert client.wait(wid, 20)["status"] == status
    # An operator's retry re-opens a finished saga; its events must replay too.
    client.retry_compensation(compensated)
    assert client.wait(compensated, 20)["requires_attention"] is False
    assert client.get(retried)["retry_state"]["total_retries"] == 2
    assert client.get(created_cancelled)["status"] == "CANCELLED"

    for wid in [created_cancelled, *outcomes]:
        assert_replays(client, wid)
