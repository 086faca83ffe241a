"""SLA compliance and time series over real HTTP, from the rollups the real workers flush."""

from __future__ import annotations

import itertools
import time

import pytest

from engine.persistence.service_registry import ServiceRegistry
from tests.api.conftest import problem, wait_status

pytestmark = pytest.mark.timeout(60)


def test_compliance_and_series_from_the_rollups(stack, flow):
    op, viewer = stack.http("operator"), stack.http("viewer")
    t0 = time.time()
    ids = [op.post("/workflows", json={"definition": flow}).json()["workflow_id"] for _ in range(4)]
    for wid in ids:
        wait_status(viewer, wid, {"COMPLETED"})

    def report():
        targets = {t["name"]: t for t in viewer.get("/sla", params={"window": 120}).json()["targets"]}
        return targets if targets["step_execution"]["count"] >= 12 and targets["workflow_start"]["count"] >= 4 else None

    deadline = time.monotonic() + 10
    while (targets := report()) is None:
        assert time.monotonic() < deadline, "rollups never showed the workflows"
        time.sleep(0.2)
    assert set(targets) >= {"workflow_start", "step_execution", "compensation", "state_persistence"}
    start = targets["workflow_start"]
    assert start["target_s"] == 1.0 and start["bar_s"] == 0.01 and start["compliance"] == 1.0 and start["met"]
    assert 0 < start["p50_s"] <= start["p99_s"] < 1.0
    step = targets["step_execution"]
    assert step["metric"] == "step_execution" and step["bar_metric"] == "step_overhead" and step["bar_count"] >= 12
    assert targets["compensation"]["count"] == 0 and targets["compensation"]["compliance"] is None

    r = viewer.get("/sla/series", params={"since": t0 - 30, "definition": flow})
    assert r.status_code == 200, r.text
    series = r.json()
    assert series["step_s"] == 10 and series["points"]
    starts = [p["start"] for p in series["points"]]
    assert starts == sorted(starts) and all(b - a == 10 for a, b in itertools.pairwise(starts))
    total = sum(p["counters"].get("workflows_started", 0) for p in series["points"])
    assert total >= 4
    assert series["breakdown"]["workflows_started"][flow] == total
    assert sum(p["counters"].get("steps.completed", 0) for p in series["points"]) >= 12
    busy = next(p for p in series["points"] if p["counters"].get("steps.completed"))
    assert busy["rates"]["steps.completed"] == pytest.approx(busy["counters"]["steps.completed"] / 10, abs=1e-3)
    assert "step_execution" in busy["latency"] and busy["latency"]["step_execution"]["count"] > 0

    hourly = viewer.get("/sla/series", params={"since": time.time() - 24 * 3600}).json()
    assert hourly["step_s"] >= 120 and len(hourly["points"]) <= 721
    problem(viewer.get("/sla/series", params={"since": time.time(), "until": time.time() - 60}), 422)
    problem(viewer.get("/sla", params={"window": 5}), 422, "invalid-request")


def test_breaker_trips_are_counted_in_the_rollups(stack):
    registry = ServiceRegistry(stack.client.r, stack.settings)
    name = f"trip{int(time.time() * 1000) % 100000}"
    window = {"window": 2, "min_calls": 2, "failure_rate": 0.5, "open_for": "10s", "half_open_calls": 1}
    registry.apply({name: {"instances": [{"id": f"{name}-1", "url": "http://127.0.0.1:9"}], "breaker": window}})
    endpoint = registry.endpoint(name)
    transitions = []
    for _ in range(2):
        lease = registry.select_instance(endpoint)
        transitions.append(registry.release(endpoint, lease, ok=False)[1])
    assert transitions[-1] == "OPENED"
    series = stack.http("viewer").get("/sla/series", params={"since": time.time() - 60}).json()
    assert series["breakdown"]["breaker_trips"][name] == 1
    assert sum(p["counters"].get("breaker_trips", 0) for p in series["points"]) >= 1
