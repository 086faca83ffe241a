"""Workflows over real HTTP: start, read, list with filters and cursors, controls, bulk, errors."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.api.conftest import problem, wait_status
from tests.integration.support import let_go, step, wait_for

pytestmark = pytest.mark.timeout(60)
END = {"COMPLETED", "COMPENSATED", "CANCELLED"}


def start(stack, definition: str, plan: dict | None = None, **fields) -> str:
    body = {"definition": definition, "input": {"plan": plan or {}}, **fields}
    r = stack.http("operator").post("/workflows", json=body)
    assert r.status_code == 201, r.text
    return r.json()["workflow_id"]


def test_start_read_and_events(stack, flow):
    h = stack.http("operator")
    r = h.post("/workflows", json={"definition": flow, "input": {"sku": "a-1"}, "correlation_id": "order-1"})
    assert r.status_code == 201
    started = r.json()
    wid = started["workflow_id"]
    assert started == {"workflow_id": wid, "status": "CREATED", "definition": f"{flow}:1", "created": True}
    assert r.headers["location"] == f"/api/v1/workflows/{wid}"

    detail = wait_status(stack.http("viewer"), wid, END)
    assert detail["status"] == "COMPLETED" and detail["correlation_id"] == "order-1"
    assert [s["step_id"] for s in detail["steps"]] == ["reserve", "charge", "ship"]
    for s in detail["steps"]:
        assert s["status"] == "COMPLETED" and s["attempt"] == 1
        assert s["started_at"] <= s["ended_at"] and s["execution_time"] is not None
        assert s["compensation"]["type"] == "UNDO"
    assert detail["compensation_stack"] == ["reserve", "charge", "ship"]
    assert detail["context"]["variables"]["ship_done"] == 1 and detail["input"] == {"sku": "a-1"}
    assert detail["requires_attention"] is False and detail["failed_compensations"] == []
    assert detail["saga"]["completed_steps"] == ["reserve", "charge", "ship"]
    assert detail["times"]["finished_at"] >= detail["times"]["created_at"]

    events = stack.http("viewer").get(f"/workflows/{wid}/events").json()
    assert events[0]["type"] == "WorkflowCreated" and events[-1]["type"] == "WorkflowCompleted"
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    rest = stack.http("viewer").get(f"/workflows/{wid}/events", params={"after": events[1]["id"]}).json()
    assert rest == events[2:]
    report = stack.http("viewer").get(f"/workflows/{wid}/consistency").json()
    assert report["consistent"] is True and report["stored_version"] == len(events)


def test_idempotency_key_returns_the_first_workflow(stack, flow):
    h = stack.http("operator")
    key = f"idem-{uuid.uuid4().hex}"
    first = h.post("/workflows", json={"definition": flow}, headers={"Idempotency-Key": key})
    again = h.post("/workflows", json={"definition": flow}, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["workflow_id"] == first.json()["workflow_id"] and again.json()["created"] is False


def test_list_filters_and_cursor_pagination(stack, flow):
    corr = f"batch-{uuid.uuid4().hex[:8]}"
    t0 = time.time()
    ids = [start(stack, flow, correlation_id=corr) for _ in range(5)]
    other = start(stack, flow)
    for wid in [*ids, other]:
        wait_status(stack.http("viewer"), wid, END)
    h = stack.http("viewer")

    seen, cursor = [], None
    while True:
        params = {"correlation_id": corr, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = h.get("/workflows", params=params).json()
        seen += [i["workflow_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    item = h.get("/workflows", params={"correlation_id": corr, "limit": 1}).json()["items"][0]
    assert set(item) == {"workflow_id", "workflow_type", "status", "correlation_id", "created_at", "updated_at",
                         "requires_attention"}  # fmt: skip
    assert item["workflow_type"] == flow and item["status"] == "COMPLETED"

    by_def = h.get("/workflows", params={"definition": flow, "status": "COMPLETED", "limit": 500}).json()
    assert {*ids, other} <= {i["workflow_id"] for i in by_def["items"]}
    assert all(i["status"] == "COMPLETED" and i["workflow_type"] == flow for i in by_def["items"])
    window = h.get("/workflows", params={"correlation_id": corr, "created_after": t0, "created_before": time.time()})
    assert {i["workflow_id"] for i in window.json()["items"]} == set(ids)
    none = h.get("/workflows", params={"correlation_id": corr, "created_before": "2001-01-01T00:00:00Z"}).json()
    assert none == {"items": [], "next_cursor": None}
    problem(h.get("/workflows", params={"status": "DONE"}), 422, "invalid-request")
    problem(h.get("/workflows", params={"cursor": "not a cursor"}), 422)

    counts = h.get("/workflows/counts").json()
    assert counts["by_status"]["COMPLETED"] >= 6 and counts["total"] == sum(counts["by_status"].values())


def test_oldest_first_pages_through_more_than_a_page_of_running_workflows(stack):
    """``order=oldest`` over the RUNNING index: the oldest first, pages that continue where the last
    one ended, and the same set as newest first in reverse."""
    name = f"hold-{uuid.uuid4().hex[:6]}"
    wait = {"max_attempts": 2, "backoff": "LINEAR", "initial_delay": "10m", "max_delay": "10m"}
    r = stack.http("admin").post("/definitions", json={"name": name, "steps": [step("hold", retry=wait)]})
    assert r.status_code == 201, r.text
    ids = [start(stack, name, {"hold": {"fail_times": 1}}) for _ in range(12)]  # each waits 10 min to retry
    h = stack.http("viewer")
    try:
        for wid in ids:
            wait_status(h, wid, {"RUNNING"})

        def pages(order: str, limit: int) -> list[list[dict]]:
            out, cursor = [], None
            while True:
                params = {"status": "RUNNING", "definition": name, "limit": limit, "order": order}
                page = h.get("/workflows", params={**params, **({"cursor": cursor} if cursor else {})})
                assert page.status_code == 200, page.text
                out.append(page.json()["items"])
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    return out

        oldest = pages("oldest", 5)
        assert [len(p) for p in oldest] == [5, 5, 2]
        flat = [i["workflow_id"] for p in oldest for i in p]
        assert sorted(flat) == sorted(ids), "every one exactly once"
        created = {i["workflow_id"]: int(i["created_at"] * 1000) for p in oldest for i in p}
        assert flat == sorted(flat, key=lambda w: (created[w], w)), "oldest first, ties by id"
        assert flat[0] == min(ids, key=lambda w: (created[w], w))
        newest = [i["workflow_id"] for p in pages("newest", 5) for i in p]
        assert newest == list(reversed(flat))
        assert [i["workflow_id"] for p in pages("oldest", 1) for i in p] == flat
        # The default is newest first; a time window bounds either order.
        assert [i["workflow_id"] for i in h.get("/workflows", params={"definition": name}).json()["items"]] == newest
        cut = (created[flat[6]] + 0.5) / 1000  # the API rounds down to the millisecond
        window = h.get("/workflows", params={"definition": name, "order": "oldest", "created_before": cut}).json()
        assert [i["workflow_id"] for i in window["items"]] == [w for w in flat if created[w] < created[flat[6]]]
        problem(h.get("/workflows", params={"order": "random"}), 422, "invalid-request")
        problem(h.get("/workflows", params={"order": ["oldest", "newest"]}), 422)
    finally:
        r = stack.http("operator").post("/workflows/bulk", json={"action": "cancel", "ids": ids})
        assert r.status_code == 200 and r.json()["succeeded"] == len(ids), r.text


def test_pause_resume_cancel_and_refused_controls(stack, flow):
    wid = start(stack, flow, {"reserve": {"sleep": 0.6}, "charge": {"sleep": 0.6}})
    op = stack.http("operator")
    wait_status(op, wid, {"RUNNING"})
    paused = op.post(f"/workflows/{wid}/pause", json={"reason": "inspect the bin"})
    assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
    # The step in flight finishes and the worker lets the saga go without starting the next one.
    wait_for(lambda: let_go(stack.client, wid), 5, "the step in flight to finish and its worker to let go")
    detail = op.get(f"/workflows/{wid}").json()
    assert detail["status"] == "PAUSED" and detail["steps"][1]["status"] == "PENDING"
    body = problem(op.post(f"/workflows/{wid}/pause"), 409, "illegal-transition")
    assert body["current"] == "PAUSED" and body["target"] == "PAUSED"
    assert op.post(f"/workflows/{wid}/resume").json()["status"] == "RUNNING"
    cancelled = op.post(f"/workflows/{wid}/cancel", json={"reason": "customer called"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "COMPENSATING"
    final = wait_status(op, wid, END)
    assert final["status"] == "COMPENSATED" and final["compensation_reason"] == "customer called"
    problem(op.post(f"/workflows/{wid}/cancel"), 409, "illegal-transition")
    problem(op.post(f"/workflows/{wid}/resume"), 409, "illegal-transition")
    problem(op.post("/workflows/0123456789abcdef0123456789abcdef/pause"), 404, "not-found")


def test_retry_compensation_clears_attention(stack, flow):
    wid = start(stack, flow, {"reserve": {"undo_fail_times": 1}, "ship": {"fail": "final"}})
    op = stack.http("operator")
    failed = wait_status(op, wid, END)
    assert failed["status"] == "COMPENSATED" and failed["requires_attention"] is True
    assert failed["failed_compensations"] == ["reserve"]
    attention = op.get("/workflows", params={"requires_attention": "true", "limit": 500}).json()["items"]
    assert wid in {i["workflow_id"] for i in attention}
    retried = op.post(f"/workflows/{wid}/retry-compensation", json={"steps": ["reserve"]})
    assert retried.status_code == 200 and retried.json()["status"] == "COMPENSATING"
    healed = wait_status(op, wid, END)
    assert healed["requires_attention"] is False and healed["failed_compensations"] == []
    problem(op.post(f"/workflows/{wid}/retry-compensation"), 409, "illegal-transition")


def test_start_errors_are_precise_problems(stack, flow):
    op = stack.http("operator")
    body = problem(op.post("/workflows", json={"definition": "no-such-flow"}), 404, "not-found")
    assert "no-such-flow" in body["detail"]
    problem(op.post("/workflows", json={"definition": flow, "version": 99}), 404, "not-found")
    strict = problem(op.post("/workflows", json={"definition": flow, "consistency": "STRICT"}), 409)
    assert strict["code"] == "consistency-unavailable"
    errors = problem(op.post("/workflows", json={"definition": flow, "extra": 1, "input": []}), 422, "invalid-request")
    assert {tuple(e["loc"]) for e in errors["errors"]} == {("body", "extra"), ("body", "input")}
    raw = op.post("/workflows", content=b'{"definition": ', headers={"Content-Type": "application/json"})
    problem(raw, 400, "malformed-json")
    problem(op.get("/workflows/not%20an%20id"), 422)
    problem(op.get("/workflows/0123456789abcdef0123456789abcdef"), 404, "not-found")
    problem(op.get("/workflows/0123456789abcdef0123456789abcdef/events"), 404, "not-found")
    problem(op.delete("/workflows"), 405)
    problem(op.get("/no/such/thing"), 404)


def test_input_rules_are_422_with_every_problem(stack):
    name = f"typed-{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "required": ["order_id"], "properties": {"qty": {"type": "integer"}}}
    r = stack.http("admin").post("/definitions", json={"name": name, "input_schema": schema, "steps": [step("a")]})
    assert r.status_code == 201, r.text
    body = problem(stack.http("operator").post("/workflows", json={"definition": name, "input": {"qty": "x"}}), 422)
    assert body["code"] == "invalid-input" and len(body["problems"]) == 2


def test_bulk_by_ids_and_by_filter_with_per_item_results(stack, flow):
    op = stack.http("operator")
    corr = f"bulk-{uuid.uuid4().hex[:8]}"
    done = start(stack, flow)
    wait_status(op, done, END)
    slow = {"reserve": {"sleep": 1.0}, "charge": {"sleep": 1.0}}
    ids = [start(stack, flow, slow, correlation_id=corr) for _ in range(2)]  # one per worker
    for wid in ids:
        wait_status(op, wid, {"RUNNING"})
    unknown = uuid.uuid4().hex
    r = op.post("/workflows/bulk", json={"action": "pause", "ids": [*ids, done, unknown], "reason": "stocktake"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["requested"], res["succeeded"], res["failed"], res["truncated"]) == (4, 2, 2, False)
    by_id = {i["workflow_id"]: i for i in res["results"]}
    assert all(by_id[w]["ok"] and by_id[w]["status"] == "PAUSED" and by_id[w]["error"] is None for w in ids)
    assert by_id[done]["error"]["status"] == 409 and by_id[done]["error"]["code"] == "illegal-transition"
    assert by_id[unknown]["error"] == {"status": 404, "code": "not-found", "detail": f"no workflow with id {unknown!r}"}

    resume = {"action": "resume", "filter": {"status": "PAUSED", "correlation_id": corr}}
    assert op.post("/workflows/bulk", json=resume).json()["succeeded"] == 2
    first = op.post("/workflows/bulk", json={"action": "cancel", "filter": {"correlation_id": corr}, "limit": 1}).json()
    assert first["requested"] == 1 and first["succeeded"] == 1 and first["truncated"] is True
    rest = op.post("/workflows/bulk", json={"action": "cancel", "ids": ids}).json()
    assert rest["succeeded"] == 1 and rest["failed"] == 1
    for wid in ids:
        assert wait_status(op, wid, END)["status"] == "COMPENSATED"

    problem(op.post("/workflows/bulk", json={"action": "pause"}), 422, "invalid-request")
    problem(op.post("/workflows/bulk", json={"action": "pause", "ids": ids, "filter": {"status": "RUNNING"}}), 422)
    problem(op.post("/workflows/bulk", json={"action": "pause", "filter": {}}), 422)
    problem(op.post("/workflows/bulk", json={"action": "explode", "ids": ids}), 422)
