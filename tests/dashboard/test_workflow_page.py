"""The Workflow page against real sagas: the step timeline, events, compensation stack, and the
pause / resume / cancel / retry-compensation buttons changing the engine's state."""

from __future__ import annotations

import json

import pytest

from tests.dashboard.conftest import control_keys, open_page, start, status_of, texts, wait_for

pytestmark = pytest.mark.timeout(90)
END = {"COMPLETED", "COMPENSATED", "CANCELLED"}
SLOW = {"reserve": {"sleep": 1.5}, "charge": {"sleep": 1.5}, "ship": {"sleep": 1.5}}


def plotly_specs(at) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_detail_of_a_finished_workflow(app, stack, flow):
    wid = start(stack, flow, correlation_id="order-77")
    wait_for(lambda: status_of(stack, wid) == "COMPLETED", what="completion")
    at = open_page(app("viewer"), "workflow", workflow_id=wid)
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    assert wid in shown and "COMPLETED" in shown and "`order-77`" in shown and f"`{flow}` v1" in shown

    (timeline,) = plotly_specs(at).values()
    bars = timeline["data"]
    assert {y for trace in bars for y in trace["y"]} == {"reserve", "charge", "ship"}
    assert timeline["layout"]["title"]["text"] == "Step timeline"

    steps, stack_df, events = (at.dataframe[i].value for i in range(3))
    assert list(steps["step"]) == ["reserve", "charge", "ship"] and set(steps["status"]) == {"COMPLETED"}
    assert list(stack_df["step"]) == ["ship", "charge", "reserve"]  # the next to compensate first
    assert events["type"].iloc[0] == "WorkflowCreated" and events["type"].iloc[-1] == "WorkflowCompleted"
    assert list(events["version"]) == list(range(1, len(events) + 1))
    assert at.json[0].value  # context and input
    assert not control_keys(at), "a viewer sees no control button"


def test_pause_resume_and_cancel_buttons(app, stack, flow):
    wid = start(stack, flow, SLOW)
    wait_for(lambda: status_of(stack, wid) == "RUNNING", what="RUNNING")
    at = open_page(app("operator"), "workflow", workflow_id=wid)
    assert control_keys(at) == {"ctl_pause", "ctl_resume", "ctl_cancel", "ctl_retry_compensation"}
    assert not at.button(key="ctl_pause").disabled and at.button(key="ctl_resume").disabled

    at.button(key="ctl_pause").click().run()
    assert not at.exception
    assert status_of(stack, wid) == "PAUSED"
    assert f"Paused: {wid}" in [s.value for s in at.success]
    assert at.button(key="ctl_pause").disabled and not at.button(key="ctl_resume").disabled

    at.button(key="ctl_resume").click().run()
    assert status_of(stack, wid) == "RUNNING"

    at.button(key="ctl_cancel").click().run()  # asks first
    assert status_of(stack, wid) == "RUNNING"
    assert any(f"Cancel {wid}?" in w.value for w in at.warning)
    at.button(key="ctl_cancel_confirm").click().run()
    assert status_of(stack, wid) in ("COMPENSATING", "COMPENSATED")
    wait_for(lambda: status_of(stack, wid) == "COMPENSATED", what="compensation")
    at.run()
    assert "COMPENSATED" in texts(at) and at.button(key="ctl_cancel").disabled


def test_a_refused_control_shows_the_apis_detail(app, stack, flow):
    wid = start(stack, flow, SLOW)
    wait_for(lambda: status_of(stack, wid) == "RUNNING", what="RUNNING")
    at = open_page(app("operator"), "workflow", workflow_id=wid)
    stack.http("operator").post(f"/workflows/{wid}/pause")  # someone else was faster
    at.button(key="ctl_pause").click().run()  # the page still showed RUNNING
    assert not at.exception
    assert any("illegal transition PAUSED -> PAUSED" in e.value and "409" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    stack.http("operator").post(f"/workflows/{wid}/cancel")


def test_retry_compensation_button(app, stack, flow):
    wid = start(stack, flow, {"reserve": {"undo_fail_times": 1}, "ship": {"fail": "final"}})
    wait_for(lambda: stack.http("viewer").get(f"/workflows/{wid}").json()["requires_attention"], what="attention")
    wait_for(lambda: status_of(stack, wid) == "COMPENSATED", what="COMPENSATED")
    at = open_page(app("operator"), "workflow", workflow_id=wid)
    assert any("Requires attention" in w.value and "reserve" in w.value for w in at.warning)
    assert at.button(key="ctl_pause").disabled and not at.button(key="ctl_retry_compensation").disabled
    at.button(key="ctl_retry_compensation").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    def healed():
        d = stack.http("viewer").get(f"/workflows/{wid}").json()
        return d["status"] == "COMPENSATED" and not d["requires_attention"] and not d["failed_compensations"]

    wait_for(healed, what="compensation retried")
