"""The Overview page against the real API: the five SLA tiles, the rate charts and the dispatch lag from
the engine's rollups, and the problems of the moment, each one click away."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.dashboard.conftest import control_keys, open_page, start, status_of, texts, wait_for
from tests.integration.support import step

pytestmark = pytest.mark.timeout(90)
SLA_NAMES = ("Workflow start", "Step execution", "Compensation", "State persistence", "Event publishing")
STUCK_S = 1.0
"""WES_DASHBOARD_STUCK_SECONDS in the tests that wait for a workflow to count as stuck (the rule itself is
unit-tested in test_charts)."""


def test_sla_tiles_and_rate_charts(app, stack, flow):
    ids = [start(stack, flow) for _ in range(3)]
    wait_for(lambda: all(status_of(stack, w) == "COMPLETED" for w in ids), what="completions")

    def counted():
        targets = {t["name"]: t for t in stack.http("viewer").get("/sla").json()["targets"]}
        return targets["workflow_start"]["count"] >= 3 and targets["step_execution"]["count"] >= 9

    wait_for(counted, what="the rollups")
    at = open_page(app("viewer"), "overview")
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    for name in SLA_NAMES:
        assert f"**{name}**" in shown, name
    compliance = [m.value for m in at.metric if m.label == "Compliance"]
    assert len(compliance) == 5 and compliance[0] == "100.00 %"  # workflow start
    assert "GREEN · met" in shown or "AMBER · our bar missed" in shown
    tile_numbers = [c.value for c in at.caption if str(c.value).startswith("p95 ")]
    assert len(tile_numbers) == 5 and " · p99 " in tile_numbers[0] and " · target 1 s" in tile_numbers[0]
    assert "NO DATA" not in shown.split("**Step execution**")[0]

    values = {m.label: m.value for m in at.metric}
    assert values["Saga success rate"] == "100.0 %" or values["Saga success rate"].endswith("%")
    assert float(values["Completion rate"].split()[0]) > 0
    assert values["Completed"] and int(values["Completed"]) >= 3

    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    titles = {c["layout"]["title"]["text"]: c for c in charts.values()}
    assert {"Sagas completed per minute", "Completed / ended", "Sagas compensating per minute",
            "Step attempts retried", "Breaker trips per minute", "Due → claimed by a worker, p95"} <= set(titles)  # fmt: skip
    assert "Dispatch lag p95" in values and any(str(c.value).startswith("our bar: p95 ≤ 100 ms") for c in at.caption)
    completed = titles["Sagas completed per minute"]["data"][0]
    assert len(completed["x"]) >= 60 and completed["y"], "an hour of 1-minute points"
    assert not control_keys(at)


def test_problems_are_one_click_away(app, stack, flow, monkeypatch):
    monkeypatch.setenv("WES_DASHBOARD_STUCK_SECONDS", str(STUCK_S))
    attention = start(stack, flow, {"reserve": {"undo_fail": "always"}, "ship": {"fail": "final"}})
    slow = start(stack, flow, {"reserve": {"sleep": 6}})
    name = f"svc{uuid.uuid4().hex[:6]}"
    config = {"services": {name: {"instances": [{"id": f"{name}-1", "url": "http://127.0.0.1:9"}]}}}
    assert stack.http("admin").post("/services", json=config).status_code == 200
    assert stack.http("operator").post(f"/services/{name}/breaker/force-open").status_code == 200
    wait_for(lambda: status_of(stack, attention) == "COMPENSATED", what="the failed saga")

    def sleeping() -> float | None:  # its first step started (and sleeps): nothing changes for 6 s
        d = stack.http("viewer").get(f"/workflows/{slow}").json()
        return d["times"]["updated_at"] if d["steps"][0]["status"] == "RUNNING" else None

    updated = wait_for(sleeping, what="the slow saga's first step")
    time.sleep(max(0.0, updated + STUCK_S + 0.2 - time.time()))

    try:
        at = open_page(app("viewer"), "overview")
        keys = {b.key for b in at.button}
        assert {f"ov_brk_{name}", f"ov_att_{attention}", f"ov_stuck_{slow}"} <= keys, keys

        at.button(key=f"ov_att_{attention}").click().run()
        assert not at.exception
        assert "Workflow" in [t.value for t in at.title] and attention in texts(at)
        assert any("Requires attention" in w.value for w in at.warning)

        at = open_page(app("viewer"), "overview")
        at.button(key=f"ov_stuck_{slow}").click().run()
        assert "Workflow" in [t.value for t in at.title] and slow in texts(at)

        at = open_page(app("viewer"), "overview")
        at.button(key=f"ov_brk_{name}").click().run()
        assert "Services" in [t.value for t in at.title]
        assert f"{name}  ← from Overview" in [s.value for s in at.subheader]
    finally:
        stack.http("operator").post(f"/services/{name}/breaker/reset")
        stack.http("admin").delete(f"/services/{name}")
        stack.http("operator").post(f"/workflows/{slow}/cancel")


def test_a_stuck_workflow_older_than_the_newest_hundred_is_listed(app, stack, monkeypatch):
    """More than a hundred newer RUNNING workflows: the stuck scan asks for the oldest, so the one
    stuck longest is found although it is not among the newest 100."""
    name = f"hold-{uuid.uuid4().hex[:6]}"
    wait = {"max_attempts": 2, "backoff": "LINEAR", "initial_delay": "10m", "max_delay": "10m"}
    r = stack.http("admin").post("/definitions", json={"name": name, "steps": [step("hold", retry=wait)]})
    assert r.status_code == 201, r.text
    plan = {"hold": {"fail_times": 1}}  # its first attempt fails; the retry waits 10 min: RUNNING, unchanged
    monkeypatch.setenv("WES_DASHBOARD_STUCK_SECONDS", str(STUCK_S))
    viewer = stack.http("viewer")

    def waiting(wid: str) -> bool:
        d = viewer.get(f"/workflows/{wid}").json()
        return d["status"] == "RUNNING" and d["steps"][0]["status"] != "RUNNING" and d["steps"][0]["attempt"] >= 1

    oldest = start(stack, name, plan)
    ids = [oldest]
    try:
        wait_for(lambda: waiting(oldest), what="the oldest saga's failed first attempt")
        time.sleep(0.05)
        ids += [start(stack, name, plan) for _ in range(105)]
        wait_for(lambda: all(waiting(w) for w in ids[-5:]), what="the newer sagas' first attempts")
        time.sleep(STUCK_S + 0.3)  # all of them are stuck now, and created before the cut
        newest = viewer.get("/workflows", params={"status": "RUNNING", "created_before": time.time() - STUCK_S,
                                                   "limit": 100}).json()["items"]  # fmt: skip
        assert oldest not in {i["workflow_id"] for i in newest}, "the newest 100 would miss it"

        at = open_page(app("viewer"), "overview")
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert f"ov_stuck_{oldest}" in {b.key for b in at.button}
        assert any(str(m.value).startswith("**Stuck** (") and "the 5 oldest shown" in str(m.value) for m in at.markdown)
    finally:
        r = stack.http("operator").post("/workflows/bulk", json={"action": "cancel", "ids": ids})
        assert r.status_code == 200, r.text
