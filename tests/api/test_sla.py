"""SLA compliance and time series over real HTTP, from the rollups the real workers flush."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import sla
from engine.persistence.service_registry import ServiceRegistry
from engine.stats import LogHistogram
from sim.launcher import SimCluster
from tests.api.conftest import problem, wait_status

pytestmark = pytest.mark.timeout(60)
CONFIG_CACHE_S = 1.2
"""Workers see a newly applied endpoint within a second (their registry caches the configuration)."""


@pytest.mark.unit
def test_series_counts_service_calls_by_service_whatever_the_definition():
    counters = {("service_calls", ("payment", "ok")): 3, ("service_calls", ("payment", "failed")): 1,
                ("service_calls", ("inventory", "refused")): 2, ("breaker_trips", ("payment",)): 1,
                ("steps", ("flow", "a", "completed")): 4, ("steps", ("other", "a", "completed")): 5}  # fmt: skip
    h = LogHistogram()
    for seconds in (0.001, 0.002, 0.003, 0.1):
        h.observe(seconds)
    points, breakdown = sla.build_series([(1000, {"step_execution": h}, counters)], 1000, 1010, 10, "flow")
    (point,) = points[:1]
    assert point["counters"] == {"service_calls.ok": 3, "service_calls.failed": 1, "service_calls.refused": 2,
                                 "breaker_trips": 1, "steps.completed": 4}  # fmt: skip
    assert point["by_service"] == {"payment": {"service_calls.ok": 3, "service_calls.failed": 1, "breaker_trips": 1},
                                   "inventory": {"service_calls.refused": 2}}  # fmt: skip
    assert breakdown["service_calls.ok"] == {"payment": 3} and breakdown["steps.completed"] == {"flow": 4}
    latency = point["latency"]["step_execution"]
    assert latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"] and latency["p95_s"] == pytest.approx(0.1, rel=0.06)
    (row,) = [r for r in sla.compliance_report({"step_execution": h}) if r["name"] == "step_execution"]
    assert row["p90_s"] == pytest.approx(0.1, rel=0.06) and row["p95_s"] == row["p99_s"]
    assert row["p50_s"] == pytest.approx(0.002, rel=0.06)


@pytest.mark.unit
def test_dispatch_lag_is_reported_against_our_bar_beside_the_sla_table():
    h = LogHistogram()
    for seconds in [0.01] * 19 + [0.5]:
        h.observe(seconds)
    (row,) = sla.indicators_report({"dispatch_lag": h})
    assert (row["name"], row["metric"], row["quantile"], row["bar_s"], row["count"]) == (
        "dispatch_lag", "dispatch_lag", 0.95, 0.1, 20,
    )  # fmt: skip
    assert row["bar_compliance"] == 0.95 and row["bar_met"] is True
    assert row["p95_s"] == pytest.approx(0.01, rel=0.06) and row["p99_s"] == pytest.approx(0.5, rel=0.06)
    (point,) = sla.build_series([(1000, {"dispatch_lag": h}, {})], 1000, 1009, 10)[0]
    assert point["latency"]["dispatch_lag"]["compliance"] == 0.95
    h.observe(0.5)
    assert sla.indicators_report({"dispatch_lag": h})[0]["bar_met"] is False
    (empty,) = sla.indicators_report({})
    assert empty["count"] == 0 and empty["bar_met"] is None and empty["p95_s"] is None
    assert all(t["name"] != "dispatch_lag" for t in sla.compliance_report({"dispatch_lag": h}))


def test_compliance_and_series_from_the_rollups(stack, flow):
    op, viewer = stack.http("operator"), stack.http("viewer")
    t0 = time.time()
    ids = [op.post("/workflows", json={"definition": flow}).json()["workflow_id"] for _ in range(4)]
    for wid in ids:
        wait_status(viewer, wid, {"COMPLETED"})

    def flushed() -> bool:
        """This test's own starts and steps are in the rollups (the unfiltered report below also counts
        other tests' workflows on the shared stack, so it can fill up first)."""
        points = viewer.get("/sla/series", params={"since": t0 - 30, "definition": flow}).json()["points"]
        started = sum(p["counters"].get("workflows_started", 0) for p in points)
        return started >= 4 and sum(p["counters"].get("steps.completed", 0) for p in points) >= 12

    def report():
        targets = {t["name"]: t for t in viewer.get("/sla", params={"window": 120}).json()["targets"]}
        return targets if targets["step_execution"]["count"] >= 12 and targets["workflow_start"]["count"] >= 4 else None

    deadline = time.monotonic() + 10
    while not flushed() or (targets := report()) is None:
        assert time.monotonic() < deadline, "rollups never showed the workflows"
        time.sleep(0.2)
    assert set(targets) >= {"workflow_start", "step_execution", "compensation", "state_persistence"}
    start = targets["workflow_start"]
    assert start["target_s"] == 1.0 and start["bar_s"] == 0.01 and start["compliance"] == 1.0 and start["met"]
    assert 0 < start["p50_s"] <= start["p90_s"] <= start["p95_s"] <= start["p99_s"] < 1.0
    step = targets["step_execution"]
    assert step["metric"] == "step_execution" and step["bar_metric"] == "step_overhead" and step["bar_count"] >= 12
    assert targets["compensation"]["count"] == 0 and targets["compensation"]["compliance"] is None
    (lag,) = viewer.get("/sla", params={"window": 120}).json()["indicators"]
    assert lag["name"] == "dispatch_lag" and lag["bar_s"] == 0.1 and lag["quantile"] == 0.95

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
    latency = busy["latency"]["step_execution"]
    assert latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"]

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


@pytest.fixture(scope="module")
def sim_payment(stack, tmp_path_factory) -> Iterator[str]:
    """A simulated payment instance of its own; its URL."""
    log = tmp_path_factory.mktemp("sla-sim") / "sim.log"
    with SimCluster(stack.settings.redis_url, {"payment": 1}, prefix=f"slasim{uuid.uuid4().hex[:6]}",
                    log_file=log) as cluster:  # fmt: skip
        yield cluster.url("payment-1")


def test_service_call_outcomes_per_service_in_the_series(stack, sim_payment):
    """Real workers call a simulated service failing half of its calls: every call's outcome is in
    the rollups by service, exactly as many as reached the service."""
    admin, op, viewer = stack.http("admin"), stack.http("operator"), stack.http("viewer")
    name = f"pay{uuid.uuid4().hex[:6]}"
    never_opens = {"window": 50, "min_calls": 50, "failure_rate": 1.0, "open_for": "1s", "half_open_calls": 1}
    config = {name: {"instances": [{"id": f"{name}-1", "url": sim_payment}],
                     "operations": {"charge": "/charge", "refund": "/refund"}, "breaker": never_opens}}  # fmt: skip
    assert admin.post("/services", json={"services": config}).status_code == 200
    assert op.post(f"/services/{name}/chaos", json={"error_rate": 0.5}).status_code == 200
    time.sleep(CONFIG_CACHE_S)
    definition = f"calls-{name}"
    charge = {
        "id": "charge",
        "action": {"service": name, "operation": "charge"},
        "compensation": {"type": "UNDO", "action": {"service": name, "operation": "refund"}},
        "retry": {"max_attempts": 6, "backoff": "LINEAR", "initial_delay": "20ms"},
    }
    r = admin.post("/definitions", json={"name": definition, "steps": [charge]})
    assert r.status_code == 201, r.text
    t0 = time.time()
    # 16 first calls at a 50 % error rate: all of them succeed once in 65,536 runs.
    ids = [op.post("/workflows", json={"definition": definition, "input": {"amount": 3}}).json()["workflow_id"]
           for _ in range(16)]  # fmt: skip
    for wid in ids:
        wait_status(viewer, wid, {"COMPLETED", "COMPENSATED"})
    reached = httpx.get(f"{sim_payment}/_sim/stats", timeout=5.0).json()
    assert reached["calls"] >= 16 and reached["errors_injected"] > 0

    def outcomes():
        series = viewer.get("/sla/series", params={"since": t0 - 30, "definition": "only-this-filters-definitions"})
        assert series.status_code == 200, series.text
        body = series.json()
        calls = {o: body["breakdown"].get(f"service_calls.{o}", {}).get(name, 0) for o in ("ok", "failed", "refused")}
        return (body, calls) if calls["ok"] + calls["failed"] >= reached["calls"] else None

    deadline = time.monotonic() + 10
    while (found := outcomes()) is None:
        assert time.monotonic() < deadline, "the rollups never showed every call"
        time.sleep(0.2)
    body, calls = found
    # The breaker's outcome of each call: an injected 500 failed, the rest were answered.
    assert calls == {"ok": reached["calls"] - reached["errors_injected"], "failed": reached["errors_injected"],
                     "refused": 0}  # fmt: skip
    per_point = {o: sum(p["by_service"].get(name, {}).get(f"service_calls.{o}", 0) for p in body["points"])
                 for o in ("ok", "failed")}  # fmt: skip
    assert per_point == {"ok": calls["ok"], "failed": calls["failed"]}
    assert sum(p["counters"].get("service_calls.failed", 0) for p in body["points"]) >= calls["failed"]
    assert all(set(c) <= {"service_calls.ok", "service_calls.failed", "service_calls.refused", "breaker_trips"}
               for p in body["points"] for c in p["by_service"].values())  # fmt: skip
    # The exporter's wes_service_calls_total comes from the breaker hash: no second count of these calls.
    breaker = viewer.get(f"/services/{name}/breaker").json()
    assert (breaker["calls"], breaker["failures"]) == (reached["calls"], reached["errors_injected"])
    families = {f.name: f for f in text_string_to_metric_families(stack.root().get("/metrics").text)}
    exported = {s.labels["outcome"]: s.value for s in families["wes_service_calls"].samples
                if s.name == "wes_service_calls_total" and s.labels["service"] == name}  # fmt: skip
    assert exported == {"ok": calls["ok"], "failed": calls["failed"]}
    assert "service_calls|" not in "".join(stack.client.r.hkeys(stack.client.stats_store.keys.metrics))
    op.post(f"/services/{name}/chaos/reset")


def test_refused_calls_are_counted_per_service(stack, sim_payment):
    admin, op, viewer = stack.http("admin"), stack.http("operator"), stack.http("viewer")
    name = f"ref{uuid.uuid4().hex[:6]}"
    quick = {"window": 20, "min_calls": 10, "failure_rate": 0.5, "open_for": "1s", "half_open_calls": 1}
    config = {name: {"instances": [{"id": f"{name}-1", "url": sim_payment}],
                     "operations": {"charge": "/charge", "refund": "/refund"}, "breaker": quick}}  # fmt: skip
    assert admin.post("/services", json={"services": config}).status_code == 200
    assert op.post(f"/services/{name}/breaker/force-open").status_code == 200
    time.sleep(CONFIG_CACHE_S)
    definition = f"refused-{name}"
    charge = {
        "id": "charge",
        "action": {"service": name, "operation": "charge"},
        "compensation": {"type": "UNDO", "action": {"service": name, "operation": "refund"}},
        "retry": {"max_attempts": 2, "backoff": "LINEAR", "initial_delay": "20ms"},
    }
    assert admin.post("/definitions", json={"name": definition, "steps": [charge]}).status_code == 201
    t0 = time.time()
    wid = op.post("/workflows", json={"definition": definition, "input": {"amount": 1}}).json()["workflow_id"]
    try:
        wait_status(viewer, wid, {"COMPENSATED"}, timeout=30)

        def refused():
            series = viewer.get("/sla/series", params={"since": t0 - 30}).json()
            return series if series["breakdown"].get("service_calls.refused", {}).get(name, 0) >= 2 else None

        deadline = time.monotonic() + 10
        while (series := refused()) is None:
            assert time.monotonic() < deadline, "the refusals never reached the rollups"
            time.sleep(0.2)
        assert name not in series["breakdown"].get("service_calls.ok", {})
        assert name not in series["breakdown"].get("service_calls.failed", {})
    finally:
        op.post(f"/services/{name}/breaker/reset")
