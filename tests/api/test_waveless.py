"""Waveless release over real HTTP: status from the workers' controller, mode switch, pins, orders."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import ORDERS, problem
from tests.integration.support import step

pytestmark = pytest.mark.timeout(60)


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


def test_status_mode_and_pins(stack):
    viewer, op = stack.http("viewer"), stack.http("operator")
    status = wait_for(lambda: (s := viewer.get("/waveless").json())["available"] and s)
    assert status["mode"] in ("waveless", "fixed") and status["leader"]
    assert status["batch_size"] >= 1 and status["last_reason"]

    fixed = op.put("/waveless/mode", json={"mode": "fixed", "wave_size": 7, "wave_interval_seconds": 2})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["mode"] == "fixed" and fixed.json()["state"]["wave_size"] == 7
    assert op.put("/waveless/mode", json={"mode": "waveless"}).json()["mode"] == "waveless"

    pinned = op.put("/waveless/pin", json={"batch_size": 3}).json()
    assert pinned["pinned_batch"] == 3
    problem(op.put("/waveless/pin", json={"batch_size": 3, "rate": 5}), 422, "invalid-request")
    problem(op.put("/waveless/pin", json={"batch_size": 10_000}), 422, "invalid-request")
    problem(op.put("/waveless/mode", json={"mode": "tidal"}), 422, "invalid-request")
    unpinned = op.delete("/waveless/pin").json()
    assert unpinned["pinned_batch"] is None and unpinned["pinned_rate"] is None
    recent = viewer.get("/waveless", params={"decisions": 20}).json()["decisions"]
    assert {"mode", "pin", "unpin"} <= {d["kind"] for d in recent}


def test_orders_are_released_into_sagas(stack):
    r = stack.http("admin").post("/definitions", json={"name": ORDERS, "steps": [step("pick")]})
    assert r.status_code in (200, 201), r.text
    orders = [{"order_id": f"o-{n}-{time.time_ns()}", "sku": "a"} for n in range(3)]
    accepted = stack.http("operator").post("/waveless/orders", json={"orders": orders})
    assert accepted.status_code == 200, accepted.text
    assert [a["order_id"] for a in accepted.json()["accepted"]] == [o["order_id"] for o in orders]

    def released():
        items = stack.http("viewer").get("/workflows", params={"definition": ORDERS, "limit": 500}).json()["items"]
        return {i["correlation_id"] for i in items} >= {o["order_id"] for o in orders}

    wait_for(released)
    problem(stack.http("operator").post("/waveless/orders", json={"orders": []}), 422)
