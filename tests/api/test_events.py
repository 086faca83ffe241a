"""The live feed over real HTTP: Server-Sent Events of a started workflow, resuming from
Last-Event-ID, filters, and the JSON pages of the same feed."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import problem, wait_status

pytestmark = pytest.mark.timeout(60)


def read_sse(lines: Iterator[str], stop_type: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Parse ``text/event-stream`` lines into events ({id, event, data}) until ``stop_type``, ``limit``
    events or the end."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                current["data"] = json.loads(current["data"])
                events.append(current)
                if current.get("event") == stop_type or len(events) >= limit:
                    break
            current = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    return events


def test_sse_streams_the_events_of_a_started_workflow(stack, flow):
    viewer = stack.http("viewer")
    started: dict[str, str] = {}

    def start_once_connected() -> None:
        started["id"] = stack.http("operator").post("/workflows", json={"definition": flow}).json()["workflow_id"]

    with viewer.stream("GET", "/events/stream", params={"type": ["WorkflowCreated", "StepExecuted",
                                                                "WorkflowCompleted"]}) as r:  # fmt: skip
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        lines = r.iter_lines()
        assert ": connected" in list(itertools.takewhile(bool, lines))
        starter = threading.Thread(target=start_once_connected)
        starter.start()
        seen = []
        while True:
            (event,) = read_sse(lines, limit=1)
            seen.append(event)
            if event["event"] == "WorkflowCompleted":
                starter.join()
                if event["data"]["workflow_id"] == started["id"]:
                    break
    events = [e for e in seen if e["data"]["workflow_id"] == started["id"]]
    assert [e["event"] for e in events] == ["WorkflowCreated", *["StepExecuted"] * 3, "WorkflowCompleted"]
    assert all(e["id"] == e["data"]["id"] and e["data"]["type"] == e["event"] for e in events)
    assert events[1]["data"]["data"]["step_id"] == "reserve"


def test_sse_of_one_workflow_resumes_from_last_event_id(stack, flow):
    wid = stack.http("operator").post("/workflows", json={"definition": flow}).json()["workflow_id"]
    wait_status(stack.http("viewer"), wid, {"COMPLETED"})
    history = stack.http("viewer").get(f"/workflows/{wid}/events").json()
    viewer = stack.http("viewer")
    params = {"workflow_id": wid, "after": "0-0", "max_events": len(history)}
    with viewer.stream("GET", "/events/stream", params=params) as r:
        everything = read_sse(r.iter_lines())
    assert [e["data"]["type"] for e in everything] == [e["type"] for e in history]
    assert [e["id"] for e in everything] == [e["id"] for e in history]
    resume = {"workflow_id": wid, "max_events": len(history) - 2}
    with viewer.stream("GET", "/events/stream", params=resume, headers={"Last-Event-ID": history[1]["id"]}) as r:
        rest = read_sse(r.iter_lines())
    assert [e["id"] for e in rest] == [e["id"] for e in history[2:]]

    problem(viewer.get("/events/stream", params={"workflow_id": "0123456789abcdef0123456789abcdef"}), 404)
    problem(stack.http(None).get("/events/stream"), 401, "unauthenticated")


def test_feed_pages(stack, flow):
    wid = stack.http("operator").post("/workflows", json={"definition": flow}).json()["workflow_id"]
    wait_status(stack.http("viewer"), wid, {"COMPLETED"})
    viewer = stack.http("viewer")
    latest = viewer.get("/events", params={"limit": 5}).json()
    assert len(latest["items"]) == 5 and latest["last_id"]
    ids = [e["id"] for e in latest["items"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    mine = viewer.get("/events", params={"workflow_id": wid, "after": "0-0", "limit": 3}).json()
    assert [e["type"] for e in mine["items"]] == ["WorkflowCreated", "WorkflowStarted", "StepStarted"]
    more = viewer.get("/events", params={"workflow_id": wid, "after": mine["last_id"], "limit": 1000}).json()
    assert more["items"][-1]["type"] == "WorkflowCompleted"
    typed = viewer.get("/events", params={"type": "WorkflowCompleted", "limit": 3}).json()["items"]
    assert typed and all(e["type"] == "WorkflowCompleted" for e in typed)
    problem(viewer.get("/events", params={"after": "yesterday"}), 422)


def test_an_unknown_event_type_is_a_422_naming_the_known_ones(stack):
    r = stack.http("viewer").get("/events", params={"type": ["StepExecuted", "StepExplode"]})
    body = problem(r, 422)
    assert body["detail"].startswith("query.type.1: ") and "WorkflowCompleted" in body["detail"], body
    assert stack.http("viewer").get("/events", params={"type": ["StepExecuted", "StepFailed"]}).status_code == 200
