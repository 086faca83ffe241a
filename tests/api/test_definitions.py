"""Definitions over real HTTP: list, read, validate, apply new versions, activate and deactivate."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import problem
from tests.integration.support import UNDO, step

pytestmark = pytest.mark.timeout(60)


def test_versions_apply_activate_deactivate(stack):
    admin, viewer = stack.http("admin"), stack.http("viewer")
    name = f"def-{uuid.uuid4().hex[:6]}"
    v1 = {"name": name, "description": "first", "steps": [step("a"), step("b")]}
    r = admin.post("/definitions", json=v1)
    assert r.status_code == 201 and r.json() == {
        "definition": f"{name}:1", "name": name, "version": 1, "created": True, "active": True
    }  # fmt: skip
    same = admin.post("/definitions", json=v1)
    assert same.status_code == 200 and same.json()["created"] is False and same.json()["version"] == 1
    r = admin.post("/definitions", json={**v1, "description": "second", "steps": [step("a")]})
    assert r.status_code == 201 and r.json()["version"] == 2

    versions = viewer.get(f"/definitions/{name}").json()
    assert [v["version"] for v in versions["versions"]] == [1, 2] and versions["latest_active"] == 2
    full = viewer.get(f"/definitions/{name}/versions/1").json()
    assert full["description"] == "first" and [s["id"] for s in full["steps"]] == ["a", "b"]
    assert full["steps"][0]["compensation"]["type"] == "UNDO"
    listed = {(d["name"], d["version"]) for d in viewer.get("/definitions").json()}
    assert {(name, 1), (name, 2)} <= listed

    off = admin.post(f"/definitions/{name}/versions/2/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False
    assert viewer.get(f"/definitions/{name}").json()["latest_active"] == 1
    started = stack.http("operator").post("/workflows", json={"definition": name}).json()
    assert started["definition"] == f"{name}:1"
    active = {(d["name"], d["version"]) for d in viewer.get("/definitions", params={"active_only": True}).json()}
    assert (name, 1) in active and (name, 2) not in active
    assert admin.post(f"/definitions/{name}/versions/2/activate").json()["active"] is True

    problem(viewer.get("/definitions/no-such-definition"), 404, "not-found")
    problem(viewer.get(f"/definitions/{name}/versions/9"), 404, "not-found")
    problem(admin.post(f"/definitions/{name}/versions/9/activate"), 404, "not-found")


def test_invalid_definitions_get_every_problem(stack):
    admin = stack.http("admin")
    bad = {
        "name": f"bad-{uuid.uuid4().hex[:6]}",
        "timeout": "soon",
        "steps": [
            {"id": "a", "action": "tests.handlers:step"},
            {"id": "b", "action": "tests.handlers:no_such_handler", "compensation": UNDO},
        ],
    }
    body = problem(admin.post("/definitions", json=bad), 422, "invalid-definition")
    text = " | ".join(body["problems"])
    assert "compensation" in text and "timeout" in text, text
    no_handler = {"name": bad["name"], "steps": [bad["steps"][1]]}
    body = problem(admin.post("/definitions", json=no_handler), 422, "invalid-definition")
    assert any("no_such_handler" in p for p in body["problems"]), body
    problem(admin.post("/definitions", json={"steps": "many"}), 422, "invalid-definition")
    problem(admin.post("/definitions", json=[1, 2]), 422, "invalid-request")

    checked = admin.post("/definitions/validate", json=no_handler).json()
    assert checked["valid"] is False and checked["name"] == bad["name"] and checked["problems"]
    good = admin.post("/definitions/validate", json={"name": "fine", "steps": [step("a")]}).json()
    assert good == {"valid": True, "name": "fine", "problems": []}
    problem(stack.http("viewer").get("/definitions/fine"), 404)  # validated, never stored
