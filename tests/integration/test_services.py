"""Service integration end to end: circuit breakers, load balancing, health checks, sticky sessions,
idempotent calls and compensation against the simulated warehouse services.

Real parts only: the session's Redis, one uvicorn process per sim instance (a module-scoped
SimCluster, its state under its own prefix), real worker processes, a real SIGKILL. Every test has
its own engine key prefix (so its own breakers, in-flight counts and health records) and resets the
chaos knobs; effects are told apart by the workflow ids in their idempotency keys.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.client import EngineClient
from engine.domain.services import HealthStatus
from engine.errors import DefinitionError, StepError
from engine.integration.http_service import CircuitOpenError, HttpServicePort, ServiceUnavailable
from engine.persistence.service_registry import CACHE_S, Lease, Refusal
from sim.launcher import SimCluster, effects, reset_chaos, set_chaos
from tests.integration.services_support import (
    FAST_BREAKER,
    all_requests,
    all_services,
    breaker_events,
    call,
    health_record,
    op_calls,
    requests_for,
    service,
    sleep_until,
    wait_health,
)
from tests.integration.support import events, of_type, one, owner_pid, wait_for, wait_ready

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
ORDER_FULFILLMENT_HTTP = REPO / "examples" / "services" / "order_fulfillment_http.yaml"
SIM_COUNTS = {"inventory": 2, "location": 1, "picking": 1, "packing": 1, "shipping": 1, "payment": 1}
FORWARD_STEPS = {  # order-fulfillment-http: step -> (sim service, forward operation, undo operation)
    "reserve_inventory": ("inventory", "reserve", "release"),
    "allocate_location": ("location", "allocate", "free"),
    "pick": ("picking", "pick", "unpick"),
    "pack": ("packing", "pack", "unpack"),
    "ship": ("shipping", "ship", "cancel"),
}


@pytest.fixture(scope="module")
def cluster(redis_url) -> Iterator[SimCluster]:
    with SimCluster(redis_url, SIM_COUNTS, prefix=f"simsvc{uuid.uuid4().hex[:8]}") as c:
        yield c


@pytest.fixture
def sim(cluster) -> Iterator[SimCluster]:
    for inst in cluster.instances:
        if not cluster.alive(inst.instance_id):
            cluster.restart(inst.instance_id)
        reset_chaos(inst.url)
    yield cluster
    for inst in cluster.instances:
        if cluster.alive(inst.instance_id):
            reset_chaos(inst.url)


@pytest.fixture
def port(client) -> HttpServicePort:
    """The engine's HTTP service port in this (test) process, over the test's registry."""
    return HttpServicePort(client.services)


def refused(port: HttpServicePort, name: str, operation: str = "charge") -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as info:
        call(port, name, operation)
    return info.value


def failing(port: HttpServicePort, name: str, n: int, operation: str = "charge") -> None:
    """n calls that reach the service and get its injected 503."""
    for _ in range(n):
        with pytest.raises(StepError) as info:
            call(port, name, operation)
        assert info.value.error_type == "HTTP503", info.value


def trip(
    client: EngineClient, port: HttpServicePort, name: str, url: str, failures: int, operation: str = "charge"
) -> dict:
    set_chaos(url, error_rate=1.0)
    failing(port, name, failures, operation)
    state = client.services.get_circuit_breaker_state(name)
    assert state["state"] == "OPEN", state
    return state


def run_saga(client: EngineClient, name: str, data: dict, timeout: float = 30.0, **kwargs) -> tuple[str, dict]:
    wid = client.start(name, data, **kwargs)["workflow_id"]
    return wid, client.wait(wid, timeout=timeout)


# ---------------------------------------------------------------------------------------------- breaker
def test_breaker_opens_at_half_failures_and_not_below(client, sim, port):
    pay = sim.url("payment-1")
    policy = {**FAST_BREAKER, "window": 10, "min_calls": 10, "open_for": "30s"}
    client.services.apply(
        {
            "payment": service(sim, "payment", breaker=policy),
            "payment-b": service(sim, "payment", breaker=policy),
        }
    )

    # 6 successes then 4 failures: the full window (10 = min_calls) is at 40 %: CLOSED.
    for _ in range(6):
        assert call(port, "payment", "charge", data={"amount": 5})["amount"] == 5
    set_chaos(pay, error_rate=1.0)
    failing(port, "payment", 4)
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["window_calls"], state["window_failure_rate"], state["trips"]) == (
        "CLOSED", 10, 0.4, 0,
    )  # fmt: skip
    assert breaker_events(client, "payment") == []

    # One more failure pushes the oldest success out: 5 of the last 10 failed, 50 %: OPEN.
    failing(port, "payment", 1)
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["trips"], state["calls"], state["failures"]) == ("OPEN", 1, 11, 5)
    [opened] = breaker_events(client, "payment", "CircuitBreakerOpened")
    assert opened["data"]["failure_rate"] == 0.5 and opened["data"]["calls"] == 10
    assert opened["data"]["open_until"] == pytest.approx(time.time() + 30, abs=2)
    refused(port, "payment")

    # Below min_calls even 100 % failures keep it closed: 9 failures of 9, then the 10th opens it.
    failing(port, "payment-b", 9)
    state = client.services.get_circuit_breaker_state("payment-b")
    assert (state["state"], state["window_calls"], state["window_failure_rate"]) == ("CLOSED", 9, 1.0)
    failing(port, "payment-b", 1)
    assert client.services.get_circuit_breaker_state("payment-b")["trips"] == 1
    assert len(breaker_events(client, "payment-b", "CircuitBreakerOpened")) == 1


def test_open_breaker_fails_fast_without_touching_the_network(client, sim, port):
    pay = sim.url("payment-1")
    client.services.apply({"payment": service(sim, "payment", breaker={**FAST_BREAKER, "open_for": "30s"})})
    trip(client, port, "payment", pay, failures=4)
    set_chaos(pay, error_rate=0.0)  # the service is fine again; the breaker does not know it
    reached = op_calls(pay, "charge")

    for _ in range(5):
        started = time.perf_counter()
        error = refused(port, "payment")
        assert time.perf_counter() - started < 0.5
        assert 0 < error.retry_after <= 30
        assert error.retryable and "not called" in str(error)

    assert op_calls(pay, "charge") == reached, "a refused call reached the service"
    assert client.services.get_circuit_breaker_state("payment")["calls"] == 4  # refusals are not outcomes


def test_half_open_admits_trial_calls_then_closes_or_reopens(client, sim, port):
    pay = sim.url("payment-1")
    client.services.apply({"payment": service(sim, "payment")})  # open_for 1s, 2 trial calls
    opened = trip(client, port, "payment", pay, failures=4)
    assert opened["trips"] == 1

    # After open_for: two concurrent trial calls are admitted, a third one meanwhile is refused.
    set_chaos(pay, error_rate=0.0, latency_ms=800)
    sleep_until(opened["open_until"] + 0.05)
    assert client.services.get_circuit_breaker_state("payment")["state"] == "HALF_OPEN"
    reached = op_calls(pay, "charge")
    breaker_key = client.services.keys.breaker("payment")
    with ThreadPoolExecutor(2) as pool:
        trials = [pool.submit(call, port, "payment", "charge") for _ in range(2)]
        wait_for(lambda: client.r.hget(breaker_key, "half_calls") == "2", 5, "both trial calls admitted")
        extra = refused(port, "payment")
        assert "half open" in str(extra) and extra.retry_after > 0
        assert all("payment_id" in t.result(timeout=10) for t in trials)
    assert op_calls(pay, "charge") == reached + 2

    # Both trials succeeded: CLOSED, with a CircuitBreakerClosed event, and the trip count unchanged.
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["trips"], state["window_calls"]) == ("CLOSED", 1, 0)
    [closed] = breaker_events(client, "payment", "CircuitBreakerClosed")
    assert closed["data"]["trial_calls"] == 2

    # Trip it again; after open_for a failing trial call re-opens it at once.
    set_chaos(pay, latency_ms=0)
    again = trip(client, port, "payment", pay, failures=4)
    assert again["trips"] == 2
    sleep_until(again["open_until"] + 0.05)
    failing(port, "payment", 1)  # the trial call: reaches the service, fails
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["trips"]) == ("OPEN", 3)
    assert state["open_until"] > time.time() + 0.5
    assert len(breaker_events(client, "payment", "CircuitBreakerOpened")) == 3
    refused(port, "payment")

    # Half open with no healthy instance: refused as unavailable without using up a trial slot, so
    # when the instance is back both trial calls go through and close the breaker.
    set_chaos(pay, error_rate=0.0)
    sleep_until(state["open_until"] + 0.05)
    client.services.update_service_health("payment", "payment-1", HealthStatus.UNHEALTHY)
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            call(port, "payment", "charge")
    client.services.update_service_health("payment", "payment-1", HealthStatus.HEALTHY)
    reached = op_calls(pay, "charge")
    for _ in range(2):
        assert "payment_id" in call(port, "payment", "charge")
    assert op_calls(pay, "charge") == reached + 2
    assert client.services.get_circuit_breaker_state("payment")["state"] == "CLOSED"


def test_refused_step_retries_once_the_breaker_admits_a_trial(client, sim, port, workers):
    """A step refused by an open breaker is retried when the open time is over, not after its own
    (much shorter) backoff, which would spend every attempt on refusals."""
    pay = sim.url("payment-1")
    policy = {**FAST_BREAKER, "open_for": "2s", "half_open_calls": 1}
    client.services.apply({"payment": service(sim, "payment", breaker=policy, health={"interval": "60s"})})
    client.apply_definition(
        {
            "name": "charge-retry",
            "steps": [
                {
                    "id": "charge",
                    "action": {"service": "payment", "operation": "charge"},
                    "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
                    "retry": {"max_attempts": 3, "backoff": "LINEAR", "initial_delay": "50ms"},
                }
            ],
        }
    )
    wait_ready(client, workers(1))
    opened = trip(client, port, "payment", pay, failures=4)
    set_chaos(pay, error_rate=0.0)
    reached = op_calls(pay, "charge")
    wid, done = run_saga(client, "charge-retry", {"amount": 3})
    assert done["status"] == "COMPLETED"

    evts = events(client, wid)
    refusal = one(evts, "StepFailed", "charge")
    assert (refusal["attempt"], refusal["error_type"], refusal["will_retry"]) == (1, "CircuitOpenError", True)
    assert refusal["next_attempt_at"] >= opened["open_until"] - 0.05
    second = of_type(evts, "StepStarted", "charge")[1]
    assert second["attempt"] == 2 and second["at"] >= opened["open_until"] - 0.05
    assert one(evts, "StepExecuted", "charge")["attempt"] == 2
    assert op_calls(pay, "charge") == reached + 1  # only the trial call reached the service
    assert client.services.get_circuit_breaker_state("payment")["state"] == "CLOSED"


def test_refused_compensation_retries_once_the_breaker_admits_a_trial(client, sim, port, workers):
    """The same for an undo: a compensation refused by an open breaker is retried after the open
    time, instead of spending its retries on refusals and being left for an operator."""
    inv = sim.url("inventory-1")
    policy = {**FAST_BREAKER, "open_for": "2s", "half_open_calls": 1}
    client.services.apply(
        {
            "inventory": service(sim, "inventory", ["inventory-1"], health={"interval": "60s"}),
            "inventory-undo": service(sim, "inventory", ["inventory-1"], breaker=policy, health={"interval": "60s"}),
            "payment": service(sim, "payment", health={"interval": "60s"}),
        }
    )
    client.apply_definition(
        {
            "name": "reserve-then-refused-charge",
            "consistency": "EXACTLY_ONCE",
            "steps": [
                {
                    "id": "reserve",
                    "action": {"service": "inventory", "operation": "reserve"},
                    "compensation": {
                        "type": "RETRY",
                        "action": {"service": "inventory-undo", "operation": "release"},
                        "max_retries": 2,
                        "retry_delay": "100ms",
                    },
                },
                {
                    "id": "charge",
                    "action": {"service": "payment", "operation": "charge"},
                    "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
                },
            ],
        }
    )
    wait_ready(client, workers(1))
    opened = trip(client, port, "inventory-undo", inv, failures=4, operation="release")
    set_chaos(inv, error_rate=0.0)
    wid, done = run_saga(client, "reserve-then-refused-charge", {"refuse": "charge"})
    assert done["status"] == "COMPENSATED"
    # Nothing is left for an operator to undo (the saga still needs attention: waiting out the
    # breaker took longer than the compensation budget, 2x the forward time, and that is flagged).
    assert done["failed_compensations"] == []

    evts = events(client, wid)
    refusal = one(evts, "CompensationFailed", "reserve")
    assert (refusal["attempt"], refusal["error_type"], refusal["will_retry"]) == (1, "CircuitOpenError", True)
    assert refusal["next_attempt_at"] >= opened["open_until"] - 0.05
    compensated = one(evts, "StepCompensated", "reserve")
    assert compensated["attempt"] == 2 and compensated["at"] >= opened["open_until"] - 0.05
    mine = {k: n for k, n in effects(inv)["effects"].items() if wid in k}
    assert mine == {f"reserve|{wid}:reserve": 1, f"release|{wid}:reserve:compensate": 1}


def test_breaker_state_is_shared_between_worker_processes(client, sim, workers):
    """Worker A's failures open the breaker; worker B, a process that never called the service,
    is refused without a call: the only thing it can know this from is the shared state in Redis."""
    pay = sim.url("payment-1")
    client.services.apply(
        {"payment": service(sim, "payment", breaker={**FAST_BREAKER, "open_for": "60s"}, health={"interval": "60s"})}
    )
    client.apply_definition(
        {
            "name": "charge-only",
            "consistency": "EXACTLY_ONCE",
            "steps": [
                {
                    "id": "charge",
                    "action": {"service": "payment", "operation": "charge"},
                    "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
                    "retry": {"max_attempts": 1},
                    "timeout": "3s",
                }
            ],
        }
    )
    set_chaos(pay, error_rate=1.0)
    before = op_calls(pay, "charge")

    def failure_of(wid: str) -> str:
        return one(events(client, wid), "StepFailed", "charge")["error_type"]

    pool_a = workers(1)
    wait_ready(client, pool_a)
    seen_a: list[str] = []
    for _ in range(10):  # one saga at a time, until worker A is refused
        wid, _ = run_saga(client, "charge-only", {"amount": 1})
        assert owner_pid(client, wid) == pool_a.pids[0]
        seen_a.append(failure_of(wid))
        if seen_a[-1] == "CircuitOpenError":
            break
    assert seen_a == ["HTTP503"] * 4 + ["CircuitOpenError"], seen_a  # min_calls 4 at 100 %: opened by A
    assert op_calls(pay, "charge") == before + 4
    pool_a.stop()

    pool_b = workers(1)
    wait_ready(client, pool_b)
    reached = op_calls(pay, "charge")
    wids = [client.start("charge-only", {"amount": 1})["workflow_id"] for _ in range(5)]
    for wid in wids:
        client.wait(wid, timeout=20)
        assert owner_pid(client, wid) == pool_b.pids[0]
        assert failure_of(wid) == "CircuitOpenError"
    assert op_calls(pay, "charge") == reached, "worker B reached the service through an open breaker"
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["trips"], state["calls"]) == ("OPEN", 1, 4)


def test_forced_states(client, sim, port):
    pay = sim.url("payment-1")
    client.services.apply({"payment": service(sim, "payment")})  # min_calls 4 in a window of 10
    set_chaos(pay, error_rate=1.0)
    failing(port, "payment", 3)  # 3 failures in the window, one short of opening

    # Forced OPEN: refused although the service is healthy; nothing reaches it.
    set_chaos(pay, error_rate=0.0)
    assert client.services.force("payment", "OPEN", by="test")["forced"] == "OPEN"
    reached = op_calls(pay, "charge")
    assert refused(port, "payment").retry_after > 0
    assert op_calls(pay, "charge") == reached

    # Forced CLOSED: every call goes through even at 100 % errors, and the breaker never opens.
    assert client.services.force("payment", "CLOSED", by="test")["forced"] == "CLOSED"
    set_chaos(pay, error_rate=1.0)
    failing(port, "payment", 15)
    assert op_calls(pay, "charge") == reached + 15
    state = client.services.get_circuit_breaker_state("payment")
    assert (state["state"], state["forced"], state["trips"]) == ("CLOSED", "CLOSED", 0)
    assert breaker_events(client, "payment", "CircuitBreakerOpened") == []

    # RESET: CLOSED, not forced, empty window: 3 more failures do not open it (3 + 3 would have).
    state = client.services.force("payment", "RESET", by="test")
    assert (state["state"], state["forced"], state["window_calls"]) == ("CLOSED", None, 0)
    failing(port, "payment", 3)
    assert client.services.get_circuit_breaker_state("payment")["state"] == "CLOSED"
    failing(port, "payment", 1)  # the breaker works again: the 4th failure opens it
    assert client.services.get_circuit_breaker_state("payment")["state"] == "OPEN"
    modes = [(e["data"]["mode"], e["data"]["by"]) for e in breaker_events(client, "payment", "CircuitBreakerForced")]
    assert modes == [("OPEN", "test"), ("CLOSED", "test"), ("RESET", "test")]


# ---------------------------------------------------------------------------------------------- load balancing
def test_load_balancer_least_utilized_target_and_rebalance(client, sim):
    reg = client.services
    a, b = "inventory-1", "inventory-2"
    reg.apply(
        {
            "lb": service(sim, "inventory", capacity=4),
            "lbs": service(sim, "inventory", capacity=20, sticky=True),
            "lbr": service(sim, "inventory", capacity=10, sticky=True),
        }
    )

    def pick(name: str, corr: str | None = None) -> str:
        lease = reg.select_instance(reg.endpoint(name), corr)
        assert isinstance(lease, Lease), lease
        return lease.instance_id

    # Least utilized: with three calls in flight on A (B out while they were placed), B gets the next
    # ones until both are at 75 %; on a tie the first listed wins.
    reg.update_service_health("lb", b, HealthStatus.UNHEALTHY)
    assert [pick("lb") for _ in range(3)] == [a, a, a]
    reg.update_service_health("lb", b, HealthStatus.HEALTHY)
    assert [pick("lb") for _ in range(4)] == [b, b, b, a]
    assert [(x.id, x.in_flight) for x in reg.loads(reg.endpoint("lb"))] == [(a, 4), (b, 3)]
    reg.update_service_health("lb", a, HealthStatus.UNHEALTHY)
    reg.update_service_health("lb", b, HealthStatus.UNHEALTHY)
    nothing = reg.select_instance(reg.endpoint("lb"))
    assert isinstance(nothing, Refusal) and nothing.reason == "no healthy instance"

    # The 85 % target with sticky sessions (capacity 20): the pinned instance keeps the session while
    # under 85 %, even though B is idle; at 17/20 = 85 % the session moves to B and stays there.
    assert [pick("lbs", "s1") for _ in range(17)] == [a] * 17  # A ends at 17 in flight = 85 %
    assert pick("lbs", "s1") == b
    assert pick("lbs", "s1") == b  # re-pinned: B at 5 % vs A at 85 %, no longer a tie-break question
    assert pick("lbs", "s2") == b  # least utilized for a new session: B (2/20) over A (17/20)

    # Rebalance past a 30 % spread (capacity 10): a sticky session pinned on the busiest moves.
    assert [pick("lbr", "r1") for _ in range(3)] == [a] * 3  # A 30 %, B 0 %: spread 0.30, not above
    assert reg.rebalance_load(reg.endpoint("lbr")) is None
    assert pick("lbr", "r1") == a  # still pinned (A at 30 % < 85 %); A now 40 %: spread 0.40
    assert reg.rebalance_load(reg.endpoint("lbr")) == (a, b)
    assert pick("lbr", "r1") == b  # drained off A
    assert pick("lbr", "r1") == b  # and pinned to B from now on


def test_sticky_sessions_follow_the_correlation_id(client, sim, port):
    client.services.apply({"inv": service(sim, "inventory", sticky=True)})
    urls = {i.instance_id: i.url for i in sim.instances_of("inventory")}
    for url in urls.values():
        set_chaos(url, latency_ms=600)
    corrs = [f"c{n}-{uuid.uuid4().hex[:8]}" for n in range(4)]

    def instance_of(wid: str) -> str:
        [where] = [iid for iid, url in urls.items() if requests_for(url, [wid])]
        return where

    # Four sessions start while the earlier ones are in flight: least utilization spreads them.
    endpoint = client.services.endpoint("inv")

    def in_flight() -> int:
        return sum(load.in_flight for load in client.services.loads(endpoint))

    first = {}
    with ThreadPoolExecutor(4) as pool:
        futures = {}
        for n, c in enumerate(corrs, 1):
            wid = f"wf-{uuid.uuid4().hex[:12]}"
            futures[c] = (wid, pool.submit(call, port, "inv", "reserve", workflow_id=wid, correlation_id=c))
            wait_for(lambda n=n: in_flight() == n, 5, f"{n} calls in flight")
        for c, (wid, f) in futures.items():
            f.result(timeout=10)
            first[c] = instance_of(wid)
    assert sorted(first.values()) == ["inventory-1", "inventory-1", "inventory-2", "inventory-2"], first

    # Later calls, one at a time (both instances idle: without stickiness all would go to the first
    # listed), go where their session went first.
    for url in urls.values():
        set_chaos(url, latency_ms=0)
    for c in corrs * 2:
        wid = f"wf-{uuid.uuid4().hex[:12]}"
        call(port, "inv", "reserve", workflow_id=wid, correlation_id=c)
        assert instance_of(wid) == first[c], c
    # Each session's correlation id was seen by its instance only.
    logs = {iid: all_requests(url) for iid, url in urls.items()}
    for c in corrs:
        seen = {iid for iid, log in logs.items() if any(r["correlation_id"] == c for r in log)}
        assert seen == {first[c]}, c


# ---------------------------------------------------------------------------------------------- health
def test_health_checks_take_a_killed_instance_out_and_back(client, sim, workers):
    client.services.apply(all_services(sim))
    client.apply_file(ORDER_FULFILLMENT_HTTP)
    first, second = "inventory-1", "inventory-2"
    pool = workers(2)
    wait_ready(client, pool)
    t0 = time.time()
    wait_health(client, "inventory", first, HealthStatus.HEALTHY, t0)
    wait_health(client, "inventory", second, HealthStatus.HEALTHY, t0)

    try:
        killed_at = time.time()
        sim.kill(first)
        took = wait_health(client, "inventory", first, HealthStatus.UNHEALTHY, killed_at, timeout=5)
        assert took < 3.0, f"marked UNHEALTHY {took:.2f}s after the kill"
        assert health_record(client, "inventory", first)["error"]
        time.sleep(CACHE_S + 0.1)  # every worker's cached health results are now from after the mark

        # No call goes to the dead instance (it would fail with a connection error): the sagas
        # complete through the other one without a single failed step.
        wids = [client.start("order-fulfillment-http", {"order_id": f"o-{n}"})["workflow_id"] for n in range(4)]
        for wid in wids:
            assert client.wait(wid, timeout=20)["status"] == "COMPLETED"
            assert of_type(events(client, wid), "StepFailed") == []
        assert len(requests_for(sim.url(second), wids, "reserve")) == 4

        sim.restart(first)  # returns once it answers /health
        restarted_at = time.time()
        took = wait_health(client, "inventory", first, HealthStatus.HEALTHY, restarted_at, timeout=5)
        assert took < 3.0, f"marked HEALTHY {took:.2f}s after it answered again"
        time.sleep(CACHE_S + 0.1)
        wids = []
        for n in range(3):  # one at a time: both idle, the first listed (the restarted one) is chosen
            wid, done = run_saga(client, "order-fulfillment-http", {"order_id": f"p-{n}"}, timeout=20)
            assert done["status"] == "COMPLETED"
            wids.append(wid)
        assert len(requests_for(sim.url(first), wids, "reserve")) == 3
    finally:
        if not sim.alive(first):
            sim.restart(first)

    # A health endpoint slower than the health timeout (0.5 s) is unhealthy too.
    slow_at = time.time()
    set_chaos(sim.url(second), health_delay_s=1.5)
    took = wait_health(client, "inventory", second, HealthStatus.UNHEALTHY, slow_at, timeout=5)
    assert took < 3.0
    assert "Timeout" in health_record(client, "inventory", second)["error"]
    set_chaos(sim.url(second), health_delay_s=0)
    wait_health(client, "inventory", second, HealthStatus.HEALTHY, time.time(), timeout=5)


# ---------------------------------------------------------------------------------------------- idempotency
def test_retry_after_timeout_applies_the_effect_once(client, sim, workers):
    loc = sim.url("location-1")
    client.services.apply({"location": service(sim, "location")})
    client.apply_definition(
        {
            "name": "allocate-once",
            "consistency": "EXACTLY_ONCE",
            "steps": [
                {
                    "id": "allocate",
                    "action": {"service": "location", "operation": "allocate"},
                    "compensation": {"type": "UNDO", "action": {"service": "location", "operation": "free"}},
                    "timeout": "500ms",
                    "retry": {"max_attempts": 3, "backoff": "LINEAR", "initial_delay": "100ms"},
                }
            ],
        }
    )
    # The first call applies its effect, then answers only after the step timed out; the retry (same
    # Idempotency-Key) gets the stored response at once.
    set_chaos(loc, latency_after_apply_ms=1500)
    pool = workers(1)
    wait_ready(client, pool)
    wid, done = run_saga(client, "allocate-once", {})
    assert done["status"] == "COMPLETED"

    evts = events(client, wid)
    failed = one(evts, "StepFailed", "allocate")
    assert (failed["attempt"], failed["error_type"], failed["uncertain"], failed["will_retry"]) == (
        1, "StepTimeout", True, True,
    )  # fmt: skip
    executed = one(evts, "StepExecuted", "allocate")
    assert executed["attempt"] == 2
    assert [s["idempotency_key"] for s in of_type(evts, "StepStarted", "allocate")] == [f"{wid}:allocate"] * 2

    mine = {k: n for k, n in effects(loc)["effects"].items() if wid in k}
    assert mine == {f"allocate|{wid}:allocate": 1}

    # The first request is logged when it answers, after its 1.5 s pause.
    def both_logged() -> list[dict] | None:
        logged = requests_for(loc, [wid], "allocate")
        return logged if len(logged) == 2 else None

    logged = wait_for(both_logged, 5, "both calls in the request log")
    assert sorted(r["outcome"] for r in logged) == ["applied", "replayed"]
    assert executed["output"]["allocation_id"].startswith("ALC-")


# ---------------------------------------------------------------------------------------------- compensation
def test_payment_down_compensates_every_earlier_step_exactly_once(client, sim, workers):
    pay = sim.url("payment-1")
    client.services.apply(all_services(sim))
    [(definition, _)] = client.apply_file(ORDER_FULFILLMENT_HTTP)
    assert definition.consistency.value == "EXACTLY_ONCE"
    set_chaos(pay, error_rate=1.0)
    pool = workers(1)
    wait_ready(client, pool)
    wid, done = run_saga(client, "order-fulfillment-http", {"order_id": "o-down"}, timeout=40)
    assert done["status"] == "COMPENSATED", done["status"]
    assert not done["requires_attention"]

    evts = events(client, wid)
    assert len(of_type(evts, "StepFailed", "charge")) == 4  # max_attempts 4, all failed
    for step_id, (svc, forward, undo) in FORWARD_STEPS.items():
        assert len(of_type(evts, "StepCompensated", step_id)) == 1, step_id
        url = sim.instances_of(svc)[0].url
        mine = {k: n for k, n in effects(url)["effects"].items() if wid in k}
        assert mine == {f"{forward}|{wid}:{step_id}": 1, f"{undo}|{wid}:{step_id}:compensate": 1}, step_id
    assert {k: n for k, n in effects(pay)["effects"].items() if wid in k} == {}  # not charged, not refunded
    assert of_type(evts, "CompensationStepStarted", "charge") == []


def test_call_headers_idempotency_correlation_and_traceparent(client, sim, workers):
    client.services.apply(all_services(sim))
    client.apply_definition(
        {
            "name": "reserve-charge",
            "consistency": "EXACTLY_ONCE",
            "steps": [
                {
                    "id": "reserve",
                    "action": {"service": "inventory", "operation": "reserve"},
                    "compensation": {"type": "UNDO", "action": {"service": "inventory", "operation": "release"}},
                },
                {
                    "id": "charge",
                    "action": {"service": "payment", "operation": "charge"},
                    "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
                },
            ],
        }
    )
    pool = workers(1)
    wait_ready(client, pool)
    corr = f"order-{uuid.uuid4().hex[:8]}"
    # payment refuses the charge (422, final): the reserve is compensated.
    wid, done = run_saga(client, "reserve-charge", {"refuse": "charge"}, correlation_id=corr)
    assert done["status"] == "COMPENSATED"
    trace_id = done["context"]["tracing"]["trace_id"]
    assert len(trace_id) == 32

    logged = [r for inst in sim.instances_of("inventory") for r in requests_for(inst.url, [wid])]
    logged += requests_for(sim.url("payment-1"), [wid])
    by_op = {r["operation"]: r for r in logged}
    assert sorted(by_op) == ["charge", "release", "reserve"] and len(logged) == 3
    assert by_op["reserve"]["idempotency_key"] == f"{wid}:reserve"
    assert by_op["charge"]["idempotency_key"] == f"{wid}:charge"
    assert by_op["release"]["idempotency_key"] == f"{wid}:reserve:compensate"
    evts = events(client, wid)
    assert one(evts, "CompensationStepStarted", "reserve")["idempotency_key"] == f"{wid}:reserve:compensate"
    parents = set()
    for r in logged:
        assert r["correlation_id"] == corr
        version, trace, parent, flags = r["traceparent"].split("-")
        assert (version, trace, flags) == ("00", trace_id, "01")
        assert len(parent) == 16 and int(parent, 16) >= 0
        parents.add(parent)
    assert len(parents) == 3  # a span id per call


# ---------------------------------------------------------------------------------------------- validation
def test_definition_naming_an_unknown_service_is_rejected(client, sim):
    client.services.apply({"payment": service(sim, "payment")})
    definition = {
        "name": "bad-services",
        "steps": [
            {
                "id": "charge",
                "action": {"service": "payments", "operation": "charge"},
                "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
            },
            {
                "id": "ship",
                "action": {"service": "payment", "operation": "charge"},
                "compensation": {"type": "UNDO", "action": {"service": "shipping", "operation": "cancel"}},
            },
        ],
    }
    with pytest.raises(DefinitionError) as info:
        client.apply_definition(definition)
    assert info.value.problems == [
        "step 'charge' action: no service endpoint named 'payments' is configured "
        "(apply it with `wes services apply FILE`)",
        "step 'ship' compensation.action: no service endpoint named 'shipping' is configured "
        "(apply it with `wes services apply FILE`)",
    ]
    assert str(info.value).startswith("definition 'bad-services': step 'charge' action:")
    assert client.list_definitions() == []
