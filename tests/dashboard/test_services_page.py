"""The Services page against a real simulated payment service: breaker state and force buttons,
instances with utilization against the 85 % target, and the demo's chaos knobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from sim.launcher import SimCluster
from tests.dashboard.conftest import control_keys, open_page, texts

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
