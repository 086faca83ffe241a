"""The Waveless page against the workers' real release controller: state, decisions with reasons,
charts, and the mode switch and pins changing the controller's state."""

from __future__ import annotations

import json

import pytest

from tests.dashboard.conftest import control_keys, open_page, texts, wait_for

pytestmark = pytest.mark.timeout(90)


def status(stack) -> dict:
    return stack.http("viewer").get("/waveless").json()


def test_status_decisions_and_charts(app, stack):
    wait_for(lambda: status(stack)["available"], what="a release controller")
    at = open_page(app("viewer"), "waveless")
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    assert "Mode: waveless" in shown and "Batch size:" in shown and "Queue depth:" in shown
    assert "held back by" in shown
    decisions = at.dataframe[0].value
    assert len(decisions) >= 1 and decisions["reason"].str.len().max() > 0
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [a["text"] for c in charts for a in c["layout"].get("annotations", [])]
    assert {"Batch size", "Rate limit (orders/s)", "Queue depth"} <= set(titles)
    assert not control_keys(at) and not at.radio, "a viewer sees no control"


def test_mode_switch_and_pin(app, stack):
    wait_for(lambda: status(stack)["available"], what="a release controller")
    at = open_page(app("operator"), "waveless")
    assert control_keys(at) == {"ctl_waveless_mode", "ctl_waveless_pin", "ctl_waveless_unpin"}
    try:
        at.radio(key="wl_mode").set_value("fixed").run()
        at.number_input(key="wl_wave_size").set_value(7)
        at.number_input(key="wl_wave_interval").set_value(2.0)
        at.button(key="ctl_waveless_mode").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        now = status(stack)
        assert now["mode"] == "fixed" and now["state"]["wave_size"] == 7
        assert "Mode: fixed (7 every 2 s)" in texts(at)

        at.radio(key="wl_mode").set_value("waveless").run()
        at.button(key="ctl_waveless_mode").click().run()
        assert status(stack)["mode"] == "waveless"

        at.radio(key="wl_pin_kind").set_value("batch size").run()
        at.number_input(key="wl_pin_value").set_value(3.0)
        at.button(key="ctl_waveless_pin").click().run()
        assert status(stack)["pinned_batch"] == 3
        assert "Pinned the batch size at 3" in [s.value for s in at.success]
        at.button(key="ctl_waveless_unpin").click().run()
        assert status(stack)["pinned_batch"] is None

        at.radio(key="wl_pin_kind").set_value("batch size").run()
        at.number_input(key="wl_pin_value").set_value(5000.0)  # past the controller's bounds
        at.button(key="ctl_waveless_pin").click().run()
        assert any("refused" in e.value and "422" in e.value for e in at.error), [e.value for e in at.error]
        kinds = {d["kind"] for d in stack.http("viewer").get("/waveless", params={"decisions": 20}).json()["decisions"]}
        assert {"mode", "pin", "unpin"} <= kinds
    finally:
        op = stack.http("operator")
        op.put("/waveless/mode", json={"mode": "waveless"})
        op.delete("/waveless/pin")
