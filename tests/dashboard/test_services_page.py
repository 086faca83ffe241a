"""The Services page against a real simulated payment service: breaker state and force buttons,
instances with utilization against the 85 % target, and the demo's chaos knobs."""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from sim.launcher import SimCluster
from tests.dashboard.conftest import control_keys, open_page, texts, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def payment(stack, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("dash-sim") / "sim.log"
    with SimCluster(stack.settings.redis_url, {"payment": 1}, prefix=f"dsim{uuid.uuid4().hex[:6]}",
                    log_file=log) as cluster:  # fmt: skip
        r = stack.http("admin").post("/services", json=cluster.services_config())
        assert r.status_code == 200, r.text
        yield "payment"


def breaker(stack, name: str) -> dict:
    return stack.http("viewer").get(f"/services/{name}/breaker").json()


def test_breakers_instances_and_force_buttons(app, stack, payment):
    at = open_page(app("operator"), "services")
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    assert "payment" in shown and "Error rate (window): 0%" in shown and "Trips: 0" in shown
    instances = at.dataframe[0].value
    assert list(instances["instance"]) == ["payment-1"] and list(instances["capacity"]) == [10]
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    utilization = next(c for c in charts.values() if c["layout"]["title"]["text"].startswith("Utilization"))
    assert list(utilization["data"][0]["x"]) == ["payment-1"]
    assert any(shape.get("y0") == 0.85 for shape in utilization["layout"]["shapes"]), "the 85 % target line"

    at.button(key="ctl_breaker_force-open_payment").click().run()
    assert not at.exception and breaker(stack, payment)["forced"] == "OPEN"
    assert "breaker forced OPEN" in texts(at)
    assert "Services available: 0 %" in texts(at)
    at.button(key="ctl_breaker_force-closed_payment").click().run()
    assert breaker(stack, payment)["forced"] == "CLOSED"
    at.button(key="ctl_breaker_reset_payment").click().run()
    after = breaker(stack, payment)
    assert after["forced"] is None and after["state"] == "CLOSED"
    assert "Breaker of payment: reset" in [s.value for s in at.success]


def test_chaos_knobs(app, stack, payment):
    at = open_page(app("operator"), "services")
    at.slider(key="svc_err_payment").set_value(0.5)
    at.number_input(key="svc_lat_payment").set_value(20.0)
    at.button(key="ctl_chaos_payment").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    knobs = stack.http("viewer").get(f"/services/{payment}/chaos").json()["instances"]["payment-1"]
    assert knobs["error_rate"] == 0.5 and knobs["latency_ms"]["mean"] == 20.0 and knobs["down"] is False
    assert "payment-1: errors 50%" in texts(at)
    at.button(key="ctl_chaos_reset_payment").click().run()
    knobs = stack.http("viewer").get(f"/services/{payment}/chaos").json()["instances"]["payment-1"]
    assert knobs["error_rate"] == 0.0


def test_a_viewer_sees_no_control_button(app, stack, payment):
    at = open_page(app("viewer"), "services")
    assert not at.exception and "payment" in texts(at)
    assert not control_keys(at)
    assert not [s for s in at.slider if (s.key or "").startswith("svc_")], "no chaos inputs either"


def numbers(values) -> list[float]:
    """A trace's values as plotly serialises them (a list, or a base64 typed array), without gaps."""
    if isinstance(values, dict):
        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def figures(at) -> dict[str, dict]:
    """Each plotly chart drawn, by its element id (which carries the chart's key)."""
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_availability_and_error_rate_are_drawn_from_the_rollups(app, stack, payment):
    """Sagas call payment while it fails half of the time: the Overview's availability and error
    rate charts and the Services page's chart of payment show it from the API's history, with no
    sampling by an open page."""
    admin, op, viewer = stack.http("admin"), stack.http("operator"), stack.http("viewer")
    original = viewer.get(f"/services/{payment}").json()["config"]
    never_opens = {"window": 50, "min_calls": 50, "failure_rate": 1.0, "open_for": "1s", "half_open_calls": 1}
    assert (
        admin.post("/services", json={"services": {payment: {**original, "breaker": never_opens}}}).status_code == 200
    )
    assert op.post(f"/services/{payment}/chaos", json={"error_rate": 0.5}).status_code == 200
    name = f"pay-{uuid.uuid4().hex[:6]}"
    charge = {
        "id": "charge",
        "action": {"service": payment, "operation": "charge"},
        "compensation": {"type": "UNDO", "action": {"service": payment, "operation": "refund"}},
        "retry": {"max_attempts": 6, "backoff": "LINEAR", "initial_delay": "50ms"},
    }
    assert admin.post("/definitions", json={"name": name, "steps": [charge]}).status_code == 201
    time.sleep(1.2)  # the workers' registry sees a changed endpoint within a second
    try:
        t0 = time.time()
        # 16 first calls at a 50 % error rate: at least one fails in all but 1 of 65,536 runs.
        ids = [op.post("/workflows", json={"definition": name, "input": {"amount": 2}}).json()["workflow_id"]
               for _ in range(16)]  # fmt: skip
        wait_for(lambda: all(viewer.get(f"/workflows/{w}").json()["status"] in ("COMPLETED", "COMPENSATED")
                             for w in ids), what="the sagas")  # fmt: skip

        def counted() -> bool:
            b = viewer.get("/sla/series", params={"since": t0 - 30}).json()["breakdown"]
            return bool(b.get("service_calls.ok", {}).get(payment) and b.get("service_calls.failed", {}).get(payment))

        wait_for(counted, what="failed and answered calls of payment in the rollups")

        at = open_page(app("viewer"), "overview")
        assert not at.error, [e.value for e in at.error]
        by_title = {f["layout"]["title"]["text"]: f for f in figures(at).values()}
        available = {t["name"]: t for t in by_title["Service calls answered OK"]["data"]}
        assert {payment, "all services"} <= set(available)
        points = numbers(available[payment]["y"])
        assert points and all(0 <= y <= 1 for y in points) and min(points) < 1, "failed calls lower availability"
        errors = {t["name"]: t for t in by_title["Failed / answered calls, per service"]["data"]}
        assert max(numbers(errors[payment]["y"])) > 0
        assert len(errors[payment]["x"]) >= 60, "an hour of 1-minute points, not what a page sampled"
        values = {m.label: m.value for m in at.metric}
        assert values["Service availability"].endswith("%") and values["Service error rate"].endswith("%")
        assert "services up now" in texts(at)

        at = open_page(app("viewer"), "services")
        assert not at.error, [e.value for e in at.error]
        chart = next(f for key, f in figures(at).items() if key.endswith(f"svc_hist_chart_{payment}"))
        lines = {t["name"]: t for t in chart["data"]}
        assert {"error rate", "availability", "utilization (sampled)"} == set(lines)
        assert len(lines["error rate"]["x"]) >= 60
        assert max(numbers(lines["error rate"]["y"])) > 0
        assert "Last 5 min:" in texts(at)
    finally:
        op.post(f"/services/{payment}/chaos/reset")
        admin.post("/services", json={"services": {payment: original}})
        op.post(f"/services/{payment}/breaker/reset")
