"""The simulated warehouse services (sim/): real uvicorn processes on loopback, real Redis.

One cluster (all six services, inventory twice) serves the module under its own key prefix; every test
uses fresh idempotency keys and starts with its knobs reset, so tests never see each other's effects.
The kill/restart test runs its own cluster.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from sim.chaos import Chaos, ChaosError, Latency
from sim.launcher import SERVICES, SimCluster, SimError, effects, reset_chaos, set_chaos, set_stock

pytestmark = pytest.mark.timeout(60)

FORWARD_SHAPES = {
    "reserve": {"reservation_id", "sku", "quantity"},
    "allocate": {"allocation_id", "location"},
    "pick": {"pick_id", "picked"},
    "pack": {"package_id"},
    "ship": {"tracking_number"},
    "charge": {"payment_id", "amount"},
}


@pytest.fixture(scope="module")
def cluster(redis_url) -> Iterator[SimCluster]:
    services = {name: 1 for name in SERVICES}
    services["inventory"] = 2
    with SimCluster(redis_url, services, prefix=f"sim{uuid.uuid4().hex[:8]}") as c:
        yield c


@pytest.fixture
def sim(cluster) -> SimCluster:
    for inst in cluster.instances:
        reset_chaos(inst.url)
    return cluster


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15.0) as client:
        yield client


def url(cluster: SimCluster, instance_id: str) -> str:
    return cluster.url(instance_id)


def key() -> str:
    return f"wf-{uuid.uuid4().hex[:12]}:step"


def call(
    client: httpx.Client,
    base: str,
    operation: str,
    idem: str | None,
    data: dict[str, Any] | None = None,
    output: Any = None,
    workflow_id: str = "wf-1",
    step_id: str = "step-1",
) -> httpx.Response:
    headers = {"X-Correlation-ID": "corr-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    body = {"workflow_id": workflow_id, "step_id": step_id, "input": data or {}, "output": output}
    return client.post(f"{base}/{operation}", json=body, headers=headers)


def count(base: str, operation: str, idem: str) -> int:
    return effects(base)["effects"].get(f"{operation}|{idem}", 0)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def holds_marker(cluster: SimCluster, service: str, operation: str, idem: str) -> bool:
    """A call with this key is past the idempotency check and not answered yet: it holds the
    in-progress marker (``<prefix>:inprog:<service>:<operation>|<key>``, see sim/store.py)."""
    with redis.Redis.from_url(cluster.redis_url) as r:
        return bool(r.exists(f"{cluster.prefix}:inprog:{service}:{operation}|{idem}"))


# -- operations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(SERVICES))
def test_forward_and_undo_return_the_documented_shapes(sim, http, service):
    forward, undo = SERVICES[service]
    base = url(sim, f"{service}-1")
    k = key()
    r = call(http, base, forward, k, {"sku": "SKU-7", "quantity": 2, "amount": 12.5})
    assert r.status_code == 200, r.text
    result = r.json()
    assert set(result) == FORWARD_SHAPES[forward]
    assert r.headers["x-correlation-id"] == "corr-1"
    if forward == "reserve":
        assert result["sku"] == "SKU-7" and result["quantity"] == 2
    if forward == "charge":
        assert result["amount"] == 12.5
    forward_id = next(iter(v for f, v in result.items() if f.endswith("_id") or f == "tracking_number"))

    r = call(http, base, undo, f"{k}:compensate", output=result)
    assert r.status_code == 200, r.text
    assert r.json() == {"undone": forward, "of": forward_id}
    assert count(base, forward, k) == 1 and count(base, undo, f"{k}:compensate") == 1

    # The same key elsewhere derives the same ids; an undo without output finds the forward it undoes.
    r = call(http, base, undo, key(), output=None)
    assert r.json() == {"undone": forward, "of": forward_id}
    assert call(http, base, undo, key(), output=None, step_id="never-ran").json() == {"undone": forward, "of": None}


def test_idempotent_repeat_returns_the_stored_response_and_applies_nothing(sim, http):
    base = url(sim, "payment-1")
    k = key()
    first = call(http, base, "charge", k, {"amount": 30})
    again = call(http, base, "charge", k, {"amount": 99})  # a repeat is answered from the record
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert count(base, "charge", k) == 1
    # The undo has its own key space: the same key on the undo is a new effect, not a replay of the charge.
    assert call(http, base, "refund", k, output=first.json()).json()["undone"] == "charge"
    assert count(base, "refund", k) == 1


def test_two_instances_of_a_service_share_idempotency_records(sim, http):
    one, two = url(sim, "inventory-1"), url(sim, "inventory-2")
    k = key()
    first = call(http, one, "reserve", k, {"sku": "shared"})
    repeat = call(http, two, "reserve", k, {"sku": "shared"})
    assert repeat.status_code == 200 and repeat.content == first.content
    assert repeat.headers["x-sim-instance"] == "inventory-2" and repeat.headers["idempotent-replayed"] == "true"
    assert count(one, "reserve", k) == count(two, "reserve", k) == 1


def test_injected_failure_is_not_stored_and_a_retry_applies_once(sim, http):
    base = url(sim, "shipping-1")
    k = key()
    set_chaos(base, error_rate=1.0)
    failed = call(http, base, "ship", k)
    assert failed.status_code == 503 and failed.json()["error"] == "injected"
    assert count(base, "ship", k) == 0
    reset_chaos(base)
    retried = call(http, base, "ship", k)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert call(http, base, "ship", k).content == retried.content
    assert count(base, "ship", k) == 1


def test_error_rate_one_fails_every_call_without_effects(sim, http):
    base = url(sim, "packing-1")
    before = http.get(f"{base}/_sim/stats").json()["operations"]["pack"]["errors_injected"]
    set_chaos(base, error_rate=1.0, error_status=500)
    keys = [key() for _ in range(8)]
    assert {call(http, base, "pack", k).status_code for k in keys} == {500}
    assert all(count(base, "pack", k) == 0 for k in keys)
    assert http.get(f"{base}/_sim/stats").json()["operations"]["pack"]["errors_injected"] == before + 8


def test_duplicate_of_a_call_that_already_applied_gets_its_response_while_it_is_still_slow(sim, http):
    one, two = url(sim, "inventory-1"), url(sim, "inventory-2")
    set_chaos(one, latency_after_apply_ms=1500)
    k = key()
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        slow = pool.submit(call, http, one, "reserve", k, {"sku": "dup"})
        wait_until(lambda: count(one, "reserve", k) == 1, "the first call to apply")
        health = http.get(f"{one}/health").json()  # the slow call does not block its instance
        assert health["in_flight"] == 1
        duplicate = call(http, two, "reserve", k, {"sku": "dup"})
        duplicate_done = time.monotonic() - started
        first = slow.result()
    assert duplicate_done < 1.4  # answered from the record while the first still sleeps
    assert first.status_code == duplicate.status_code == 200
    assert first.content == duplicate.content
    assert count(one, "reserve", k) == 1


def test_duplicate_of_a_call_in_progress_waits_for_its_response(sim, http):
    one, two = url(sim, "inventory-1"), url(sim, "inventory-2")
    set_chaos(one, latency_ms={"mean": 800, "p99": 800})  # constant: the first holds the key 0.8 s before applying
    k = key()
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        slow = pool.submit(call, http, one, "reserve", k, {"sku": "wait"})
        wait_until(lambda: holds_marker(sim, "inventory", "reserve", k), "the first call to hold the key")
        duplicate = call(http, two, "reserve", k, {"sku": "wait"})
        waited = time.monotonic() - started
        first = slow.result()
    assert waited >= 0.75
    assert first.status_code == duplicate.status_code == 200 and first.content == duplicate.content
    assert duplicate.headers["idempotent-replayed"] == "true"
    assert count(one, "reserve", k) == 1


def test_duplicate_proceeds_when_the_call_in_progress_fails(sim, http):
    one, two = url(sim, "inventory-1"), url(sim, "inventory-2")
    set_chaos(one, latency_ms=600)
    k = key()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(call, http, one, "reserve", k, {"refuse": "reserve"})
        wait_until(lambda: holds_marker(sim, "inventory", "reserve", k), "the first call to hold the key")
        duplicate = call(http, two, "reserve", k, {"sku": "after-failure"})
        first = slow.result()
    assert first.status_code == 422 and first.json()["error"] == "refused"
    assert duplicate.status_code == 200 and duplicate.json()["sku"] == "after-failure"
    assert "idempotent-replayed" not in duplicate.headers
    assert count(one, "reserve", k) == 1


# -- refusals and bad requests ---------------------------------------------------------------------


def test_insufficient_stock_is_refused_with_409_and_a_release_gives_stock_back(sim, http):
    base = url(sim, "inventory-1")
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    set_stock(base, sku, 5)
    held = call(http, base, "reserve", key(), {"sku": sku, "quantity": 3})
    assert held.status_code == 200
    k = key()
    refused = call(http, base, "reserve", k, {"sku": sku, "quantity": 3})
    assert refused.status_code == 409
    assert refused.json()["error"] == "insufficient_stock" and refused.json()["available"] == 2
    assert count(base, "reserve", k) == 0
    assert call(http, base, "release", key(), output=held.json()).status_code == 200
    assert call(http, url(sim, "inventory-2"), "reserve", k, {"sku": sku, "quantity": 3}).status_code == 200
    assert http.get(f"{base}/_sim/stock").json()["stock"][sku] == 2


def test_refuse_unknown_operation_bad_input_and_missing_key(sim, http):
    base = url(sim, "payment-1")
    refused = call(http, base, "charge", key(), {"refuse": "charge"})
    assert refused.status_code == 422 and refused.json()["error"] == "refused"
    assert call(http, base, "charge", key(), {"refuse": ["refund"]}).status_code == 200
    bad = call(http, base, "charge", key(), {"amount": -1})
    assert bad.status_code == 422 and "input.amount" in bad.json()["message"]
    unknown = call(http, base, "reserve", key())
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_operation"
    missing = call(http, base, "charge", None)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["message"]
    no_ids = http.post(f"{base}/charge", json={"input": {}}, headers={"Idempotency-Key": key()})
    assert no_ids.status_code == 400 and "workflow_id" in no_ids.json()["message"]


# -- chaos knobs -----------------------------------------------------------------------------------


def test_down_fails_everything_but_the_chaos_endpoints(sim, http):
    base = url(sim, "location-1")
    set_chaos(base, down=True)
    assert http.get(f"{base}/health").status_code == 503
    assert call(http, base, "allocate", key()).status_code == 503
    assert http.get(f"{base}/_chaos").json()["down"] is True
    set_chaos(base, down=False)
    assert http.get(f"{base}/health").json() == {
        "status": "ok",
        "service": "location",
        "instance": "location-1",
        "in_flight": 0,
    }


def test_health_delay_makes_health_slow(sim, http):
    base = url(sim, "picking-1")
    set_chaos(base, health_delay_s=0.6)
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{base}/health", timeout=0.2)
    started = time.monotonic()
    assert http.get(f"{base}/health").status_code == 200
    assert time.monotonic() - started >= 0.55
    assert call(http, base, "pick", key()).status_code == 200  # operations are not delayed


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1, got 1.5"),
        ({"error_rate": "half"}, "error_rate must be a number"),
        ({"latency_ms": {"mean": -5}}, "latency_ms.mean must be >= 0, got -5"),
        ({"latency_ms": {"mean": 10, "p99": 5}}, "latency_ms.p99 must be >= latency_ms.mean"),
        ({"latency_ms": {"mean": 1, "p99": 100}}, "at most 14.97 x latency_ms.mean for a lognormal fit"),
        ({"latency_ms": {"mean": 1, "p50": 2}}, "latency_ms: unknown field(s) 'p50'"),
        ({"latency_after_apply_ms": -1}, "latency_after_apply_ms must be >= 0, got -1"),
        ({"health_delay_s": -0.5}, "health_delay_s must be >= 0"),
        ({"down": "yes"}, "down must be true or false"),
        ({"error_status": 200}, "error_status must be an HTTP error status"),
        ({"explode": True}, "unknown chaos knob 'explode'"),
    ],
)
def test_bad_chaos_knobs_are_rejected_with_a_precise_message(sim, http, knobs, message):
    base = url(sim, "shipping-1")
    r = http.post(f"{base}/_chaos", json={"error_rate": 0.5, **knobs} if "error_rate" not in knobs else knobs)
    assert r.status_code == 422
    assert message in r.json()["message"]
    assert http.get(f"{base}/_chaos").json()["error_rate"] == 0.0  # all or nothing
    with pytest.raises(SimError) as raised:
        set_chaos(base, **knobs)
    assert raised.value.status == 422 and message in str(raised.value)


@pytest.mark.unit
def test_chaos_knobs_update_partially_and_reset():
    chaos = Chaos()
    chaos.update({"error_rate": 0.25, "latency_ms": 40})
    chaos.update({"down": True})
    assert chaos.as_dict() == {
        "error_rate": 0.25,
        "error_status": 503,
        "latency_ms": {"mean": 40.0, "p99": 40.0},
        "down": True,
        "health_delay_s": 0.0,
        "latency_after_apply_ms": 0.0,
    }
    with pytest.raises(ChaosError) as raised:
        chaos.update({"error_rate": -0.1, "down": False})
    assert raised.value.problems == ["error_rate must be between 0 and 1, got -0.1"]
    assert chaos.down is True


@pytest.mark.unit
def test_latency_is_lognormal_with_the_requested_mean_and_p99():
    rng = random.Random(7)
    latency = Latency(mean=20.0, p99=80.0)
    draws = sorted(latency.sample_s(rng) * 1000 for _ in range(40_000))
    mean = sum(draws) / len(draws)
    p99 = draws[int(len(draws) * 0.99)]
    assert math.isclose(mean, 20.0, rel_tol=0.05)
    assert math.isclose(p99, 80.0, rel_tol=0.08)
    assert Latency(0, 0).sample_s(rng) == 0.0
    assert Latency(15, 15).sample_s(rng) == 0.015


# -- the launcher ----------------------------------------------------------------------------------


def test_services_config_is_the_engine_registry_format(cluster):
    config = cluster.services_config()
    assert set(config) == {"services"}
    assert set(config["services"]) == set(SERVICES)
    inventory = config["services"]["inventory"]
    assert inventory["operations"] == {"reserve": "/reserve", "release": "/release"}
    assert [i["id"] for i in inventory["instances"]] == ["inventory-1", "inventory-2"]
    assert all(i["url"].startswith("http://127.0.0.1:") for i in inventory["instances"])
    assert config["services"]["payment"]["operations"] == {"charge": "/charge", "refund": "/refund"}


def test_kill_and_restart_an_instance(redis_url, http):
    with SimCluster(redis_url, {"payment": 2}, prefix=f"sim{uuid.uuid4().hex[:8]}") as c:
        one, two = c.url("payment-1"), c.url("payment-2")
        k = key()
        first = call(http, one, "charge", k, {"amount": 7})
        c.kill("payment-1")
        assert not c.alive("payment-1")
        with pytest.raises(httpx.ConnectError):
            http.get(f"{one}/health")
        assert http.get(f"{two}/health").status_code == 200
        c.restart("payment-1")
        assert http.get(f"{one}/health").json()["instance"] == "payment-1"
        assert call(http, one, "charge", k, {"amount": 7}).content == first.content
        assert count(one, "charge", k) == 1

        # Killed mid-call, before applying: its in-progress marker expires (~2 s) and a retry elsewhere applies.
        set_chaos(one, latency_ms=5000)
        k = key()
        with ThreadPoolExecutor(1) as pool:
            doomed = pool.submit(call, http, one, "charge", k)
            wait_until(lambda: holds_marker(c, "payment", "charge", k), "the doomed call to hold the key")
            c.kill("payment-1")
            with pytest.raises(httpx.TransportError):
                doomed.result()
        started = time.monotonic()
        retried = call(http, two, "charge", k)
        assert retried.status_code == 200 and time.monotonic() - started < 3.0
        assert count(two, "charge", k) == 1
        c.restart("payment-1")
        assert http.get(f"{one}/_chaos").json()["latency_ms"] == {"mean": 0.0, "p99": 0.0}  # knobs are per process
        pids = [c.pid("payment-1"), c.pid("payment-2")]
    assert not c.alive("payment-1") and not c.alive("payment-2")
    assert all(p is not None for p in pids)
    with pytest.raises(httpx.ConnectError):
        http.get(f"{two}/health")
