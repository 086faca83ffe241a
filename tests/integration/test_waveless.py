"""Waveless order release on a real Redis with real worker processes: intake to completed sagas, mode
switches mid-flow, a killed leader, redelivery, the load the controller measures, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner

from engine.client import EngineClient
from engine.domain.waveless import ProcessingStrategy
from engine.saga.waveless import WavelessProcessingService, new_order_id
from engine.saga.waveless_controller import ARRIVED_HEADER
from tests.conftest import fast_settings
from tests.integration.support import wait_for, wait_ready
from wes_cli.main import cli

pytestmark = pytest.mark.timeout(90)

DEF = "wl-order"
ORDER_DEFINITION = {
    "name": DEF,
    "input_schema": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}},
    "steps": [
        {"id": "reserve", "action": "tests.handlers:step", "compensation": {"type": "UNDO", "action": "tests.handlers:undo"}},
        {"id": "ship", "action": "tests.handlers:step", "compensation": {"type": "UNDO", "action": "tests.handlers:undo"}},
    ],
}  # fmt: skip


@pytest.fixture
def settings(redis_url):
    """The test's settings (the shared fixtures build the client and the workers from them): orders
    start ``wl-order``, and a dead leader is replaced after about a second."""
    return fast_settings(
        redis_url,
        waveless_definition=DEF,
        waveless_leader_ttl_seconds=1.0,
        waveless_adjust_seconds=0.2,
        waveless_tick_seconds=0.05,
    )


@pytest.fixture
def wl(client: EngineClient) -> WavelessProcessingService:
    return client.engine.waveless()


def define(client: EngineClient) -> None:
    client.apply_definition(ORDER_DEFINITION)


def workflows_of(client: EngineClient, order_id: str) -> list[dict]:
    return client.list(correlation_id=order_id, limit=10).items


def total_workflows(client: EngineClient) -> int:
    return client.r.zcard(client.repo.keys.by_definition(DEF))


def completed(client: EngineClient) -> int:
    return client.counts()["COMPLETED"]


def assert_each_order_started_exactly_once(client: EngineClient, order_ids: list[str]) -> None:
    counts = {oid: len(workflows_of(client, oid)) for oid in order_ids}
    lost = [oid for oid, n in counts.items() if n == 0]
    doubled = [oid for oid, n in counts.items() if n > 1]
    assert not lost, f"{len(lost)} order(s) never started a saga: {lost[:5]}"
    assert not doubled, f"{len(doubled)} order(s) started more than one saga: {doubled[:5]}"
    assert total_workflows(client) == len(order_ids)


def assert_intake_drained(wl: WavelessProcessingService, accepted: int) -> None:
    state = wl.status()
    assert state["queue_depth"] == 0
    assert state["pending"] == 0
    assert wl.store.intake_length() == 0, "released entries are deleted from the intake"
    assert state["accepted_total"] == accepted
    assert state["released_total"] == accepted


def leader_pid(wl: WavelessProcessingService) -> int:
    return int(wait_for(wl.store.leader, 10, "a leader").split(":")[1])


# ---------------------------------------------------------------------------------------------- flow
def test_orders_on_the_intake_are_released_into_sagas_that_complete(client, workers, wl) -> None:
    define(client)
    pool = workers(2)
    wait_ready(client, pool)
    before = time.time()
    accepted = wl.submit([{"sku": f"SKU-{i}"} for i in range(30)] + [{"order_id": "o-named"}])
    order_ids = [a["order_id"] for a in accepted]
    assert "o-named" in order_ids and len(set(order_ids)) == 31

    wait_for(lambda: completed(client) == 31, 20, "31 completed sagas")
    assert_each_order_started_exactly_once(client, order_ids)
    for a in accepted[:5]:
        (saga,) = workflows_of(client, a["order_id"])
        assert saga["input"]["order_id"] == a["order_id"]
        assert before <= float(saga["context"]["headers"][ARRIVED_HEADER]) <= saga["time_constraints"]["created_at"]
    assert_intake_drained(wl, 31)
    state = wl.status(decisions=50)
    assert state["mode"] == "waveless"
    assert state["leader"].split(":")[1] in {str(p) for p in pool.pids}
    kinds = {d["kind"] for d in state["decisions"]}
    assert "leader" in kinds and kinds & {"grow", "hold"}
    assert state["last_reason"]
    # Nothing waits any more, so nothing holds releases back (not the batch, the rate or the headroom).
    wait_for(lambda: wl.status()["limit"] == "idle", 5, "the state to show that nothing holds releases back")


def test_switching_modes_mid_flow_loses_and_duplicates_nothing(client, workers, wl) -> None:
    define(client)
    pool = workers(2)
    wait_ready(client, pool)
    order_ids: list[str] = []
    done = threading.Event()

    def feed() -> None:
        for _ in range(60):
            order_ids.extend(a["order_id"] for a in wl.submit([{} for _ in range(5)]))
            time.sleep(0.05)
        done.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        time.sleep(0.4)
        wl.enable_waveless_mode(ProcessingStrategy.parse("fixed", 15, 0.3), by="test")
        wait_for(lambda: any(d["kind"] == "wave" for d in wl.store.decisions(50)), 5, "a fixed wave")
        wl.enable_waveless_mode("waveless", by="test")
        wl.pin(batch=3, by="test")
        wait_for(lambda: wl.status()["last_kind"] == "pinned" and wl.status()["batch_size"] == 3, 5, "the pin applied")
        wl.unpin(by="test")
        wl.enable_waveless_mode(ProcessingStrategy.parse("fixed", 40, 0.5), by="test")
        time.sleep(0.7)
        wl.enable_waveless_mode("waveless", by="test")
    finally:
        feeder.join()
    assert done.is_set()

    wait_for(lambda: completed(client) == 300, 30, "300 completed sagas")
    assert len(order_ids) == 300
    assert_each_order_started_exactly_once(client, order_ids)
    assert_intake_drained(wl, 300)
    kinds = [d["kind"] for d in wl.store.decisions(1000)]
    assert kinds.count("mode") == 4 and "wave" in kinds and "pin" in kinds and "unpin" in kinds


# ---------------------------------------------------------------------------------------------- crashes
def test_a_killed_leader_does_not_lose_the_orders_it_read_and_had_not_started(client, workers, wl) -> None:
    pool = workers(2)
    wait_ready(client, pool)
    old = leader_pid(wl)
    # The saga is not defined yet: the leader reads the orders but cannot start them, so it holds
    # them released-but-unstarted (pending, unacknowledged) until it can.
    order_ids = [new_order_id() for _ in range(20)]
    wl.store.append([(oid, json.dumps({"order_id": oid}), time.time()) for oid in order_ids])
    consumer = wl.store.leader()
    held = wait_for(lambda: wl.store.pending().get(consumer), 10, "the leader holding unacknowledged orders")
    # It keeps them (and its lock) while it cannot start them: still so once a release has failed.
    wait_for(lambda: "cannot release" in (wl.status()["last_error"] or ""), 5, "a failed release")
    assert wl.store.pending() == {consumer: held}
    assert wl.store.leader() == consumer
    assert "cannot release" in (wl.status()["last_error"] or "")
    assert total_workflows(client) == 0

    os.kill(old, signal.SIGKILL)
    define(client)
    wait_for(lambda: completed(client) == 20, 20, "20 completed sagas")
    new = leader_pid(wl)
    assert new != old and new in pool.pids
    assert_each_order_started_exactly_once(client, order_ids)
    assert_intake_drained(wl, 20)
    takeovers = [d for d in wl.store.decisions(100) if d["kind"] == "leader"]
    assert f"claimed {held} unacknowledged" in takeovers[0]["reason"]


def test_leader_killed_mid_flow_loses_and_duplicates_nothing(client, workers, wl) -> None:
    define(client)
    pool = workers(3)
    wait_ready(client, pool)
    order_ids: list[str] = []

    def feed() -> None:
        for _ in range(50):
            order_ids.extend(a["order_id"] for a in wl.submit([{} for _ in range(4)]))
            time.sleep(0.04)

    feeder = threading.Thread(target=feed)
    feeder.start()
    killed = []
    try:
        for _ in range(2):
            time.sleep(0.6)
            pid = leader_pid(wl)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            wait_for(lambda p=pid: wl.store.leader() and leader_pid(wl) != p, 10, "another leader")
    finally:
        feeder.join()
    assert len(set(killed)) == 2

    wait_for(lambda: completed(client) == 200, 30, "200 completed sagas")
    assert_each_order_started_exactly_once(client, order_ids)
    assert_intake_drained(wl, 200)


def test_an_order_delivered_again_never_starts_a_second_saga(client, workers, wl) -> None:
    define(client)
    accepted = wl.submit([{} for _ in range(10)])
    order_ids = [a["order_id"] for a in accepted]
    # A releaser read all ten, started the first five and died before acknowledging any of them.
    ghost = wl.store.read_new("ghost-releaser", 10)
    assert [e.order_id for e in ghost] == order_ids
    first = {}
    for e in ghost[:5]:
        first[e.order_id] = client.start(DEF, e.order, correlation_id=e.order_id, idempotency_key=f"order:{e.order_id}")
    assert wl.store.pending() == {"ghost-releaser": 10}

    pool = workers(1)
    wait_ready(client, pool)
    wait_for(lambda: completed(client) == 10, 20, "10 completed sagas")
    assert_each_order_started_exactly_once(client, order_ids)
    for oid, res in first.items():
        assert [w["workflow_id"] for w in workflows_of(client, oid)] == [res["workflow_id"]]
    assert_intake_drained(wl, 10)
    assert "ghost-releaser" not in wl.store.pending()


# ---------------------------------------------------------------------------------------------- measuring
def test_the_controller_measures_in_flight_sagas_and_open_breakers(client, wl) -> None:
    client.services.apply({"services": {"payment": {"instances": [{"id": "payment-1", "url": "http://127.0.0.1:9"}],
                                                    "operations": {"charge": "/charge", "refund": "/refund"}}}})  # fmt: skip
    charge = {
        "id": "charge",
        "action": {"service": "payment", "operation": "charge"},
        "compensation": {"type": "UNDO", "action": {"service": "payment", "operation": "refund"}},
    }
    client.apply_definition({"name": DEF, "steps": [charge]})
    for i in range(3):
        client.start(DEF, {"order_id": f"o-{i}"})  # no worker runs: they stay CREATED, in flight
    wl.submit([{} for _ in range(4)])
    calm = wl.controller.measure()
    assert (calm.queue_depth, calm.in_flight, calm.open_breakers) == (4, 3, ())
    assert calm.worker_utilization == pytest.approx(3 / settings_slots(client))

    client.services.force("payment", "OPEN", by="test")
    tripped = wl.controller.measure()
    assert tripped.open_breakers == ("payment",)
    batch_before = wl.controller.control.batch_size
    decided = wl.controller.adjust_processing_rate(tripped)
    assert decided.kind == "shrink" and decided.batch_size == max(1, int(batch_before * 0.5))
    state = wl.status()
    assert state["breakers_open"] == "payment"
    assert "breaker open (payment)" in state["last_reason"]
    assert state["decisions"][0]["kind"] == "shrink"


def wl_depth(client: EngineClient) -> int:
    return int(client.r.get(client.repo.keys.orders_depth) or 0)


def settings_slots(client: EngineClient) -> int:
    return client.settings.max_in_flight  # the default slots; one live worker counted when none heartbeats


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_submits_orders_and_operates_the_controller(client, settings) -> None:
    define(client)
    runner = CliRunner()
    base = ["--redis-url", settings.redis_url, "--prefix", settings.key_prefix]
    env = {"WES_WAVELESS_DEFINITION": DEF}

    def wes(*args: str, code: int = 0):
        result = runner.invoke(cli, [*base, *args], env=env)
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    out = json.loads(wes("orders", "submit", "--count", "3", "--json").stdout)
    assert len(out["accepted"]) == 3 and out["queue_depth"] == 3
    fixed = json.loads(wes("waveless", "mode", "fixed", "--wave-size", "7", "--wave-interval", "2", "--json").stdout)
    assert (fixed["mode"], fixed["wave_size"], fixed["wave_interval_s"]) == ("fixed", 7, 2)
    pinned = json.loads(wes("waveless", "pin", "--batch", "5", "--json").stdout)
    assert pinned["pins"] == {"batch": 5, "rate": None}
    assert json.loads(wes("waveless", "unpin", "--json").stdout)["pins"] == {"batch": None, "rate": None}
    status = json.loads(wes("waveless", "status", "--json").stdout)
    assert status["queue_depth"] == 3 and status["accepted_total"] == 3
    assert [d["kind"] for d in status["decisions"][:3]] == ["unpin", "pin", "mode"]
    assert "fixed waves: 7 orders every 2 s" in wes("waveless", "status").stdout

    bad = wes("waveless", "pin", "--batch", "100000", code=1)
    assert bad.stderr.strip().startswith("error: pinned batch must be within") and len(bad.stderr.splitlines()) == 1
    bad = wes("orders", "submit", "--input", "[1]", code=1)
    assert (
        bad.stderr.startswith("error: invalid input: --input must be a JSON object")
        and len(bad.stderr.splitlines()) == 1
    )
    wes("waveless", "pin", "--batch", "2", "--rate", "3", code=2)
    wes("orders", "submit", "--count", "2", "--input", '{"order_id": "o-1"}', code=2)
    assert wl_depth(client) == 3, "refused submissions put nothing on the intake"
