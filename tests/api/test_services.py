"""Service endpoints over real HTTP, against a real simulated service instance: instances with
health and utilization, breaker force open / closed / reset, chaos knobs, configuration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sim.launcher import SimCluster
from tests.api.conftest import problem

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def payment(stack, tmp_path_factory) -> Iterator[str]:
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    with SimCluster(stack.settings.redis_url, {"payment": 1}, prefix=prefix, log_file=log) as cluster:
        r = stack.http("admin").post("/services", json=cluster.services_config())
        assert r.status_code == 200 and r.json() == {"services": ["payment"]}, r.text
        yield "payment"


def test_endpoints_with_instances_health_and_utilization(stack, payment):
    services = stack.http("viewer").get("/services").json()
    svc = next(s for s in services if s["name"] == payment)
    (inst,) = svc["instances"]
    assert inst["id"] == "payment-1" and inst["url"].startswith("http://127.0.0.1:")
    assert inst["in_flight"] == 0 and inst["utilization"] == 0.0 and inst["healthy"] is True
    assert inst["health"]["status"] in ("HEALTHY", "UNKNOWN")
    assert svc["healthy_instances"] == 1 and svc["breaker"]["state"] == "CLOSED"
    assert svc["config"]["breaker"]["failure_rate"] == 0.5
    assert stack.http("viewer").get(f"/services/{payment}").json()["name"] == payment
    problem(stack.http("viewer").get("/services/nope"), 404, "not-found")


def test_breaker_force_open_closed_and_reset(stack, payment):
    op = stack.http("operator")
    opened = op.post(f"/services/{payment}/breaker/force-open").json()
    assert opened["state"] == "CLOSED" and opened["forced"] == "OPEN"
    assert stack.http("viewer").get(f"/services/{payment}/breaker").json()["forced"] == "OPEN"
    assert op.post(f"/services/{payment}/breaker/force-closed").json()["forced"] == "CLOSED"
    reset = op.post(f"/services/{payment}/breaker/reset").json()
    assert reset["state"] == "CLOSED" and reset["forced"] is None and reset["window_calls"] == 0
    problem(op.post(f"/services/{payment}/breaker/explode"), 422)
    problem(op.post("/services/nope/breaker/reset"), 404, "not-found")


def test_chaos_knobs_of_the_simulated_service(stack, payment):
    op = stack.http("operator")
    before = stack.http("viewer").get(f"/services/{payment}/chaos").json()
    assert before["instances"]["payment-1"]["error_rate"] == 0.0
    r = op.post(f"/services/{payment}/chaos", json={"error_rate": 0.5, "latency_ms": {"mean": 5, "p99": 20}})
    assert r.status_code == 200, r.text
    knobs = r.json()["instances"]["payment-1"]
    assert knobs["error_rate"] == 0.5 and knobs["latency_ms"] == {"mean": 5.0, "p99": 20.0}
    assert op.post(f"/services/{payment}/chaos/reset").json()["instances"]["payment-1"]["error_rate"] == 0.0
    problem(op.post(f"/services/{payment}/chaos", json={"error_rate": 2}), 422, "invalid-request")
    problem(op.post(f"/services/{payment}/chaos", json={}), 422, "invalid-request")
    problem(op.post(f"/services/{payment}/chaos", json={"down": True, "instance": "payment-9"}), 404)


def test_apply_and_remove_configuration(stack):
    admin = stack.http("admin")
    config = {"services": {"scratch": {"instances": [{"id": "s-1", "url": "http://127.0.0.1:9", "capacity": 4}]}}}
    assert admin.post("/services", json=config).json() == {"services": ["scratch"]}
    assert stack.http("viewer").get("/services/scratch").json()["instances"][0]["capacity"] == 4
    body = problem(admin.post("/services", json={"services": {"bad": {"instances": "x"}}}), 422)
    assert body["code"] == "invalid-definition"
    assert admin.delete("/services/scratch").status_code == 204
    problem(admin.delete("/services/scratch"), 404, "not-found")
