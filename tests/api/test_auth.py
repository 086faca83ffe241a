"""Auth over real HTTP: every endpoint x every role (plus no key and a wrong key), key management,
the first admin key of `wes up`, the audit log of control actions, and the rate limit."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from api.auth import KEY_FORMAT, _main, configured_keys, ensure_admin_key
from api.settings import ApiSettings
from engine import ConfigurationError
from engine.client import EngineClient
from tests.api.conftest import ROLES, problem
from tests.conftest import fast_settings

pytestmark = pytest.mark.timeout(60)

NOBODY = uuid.uuid4().hex
WF = f"/workflows/{NOBODY}"
# (method, path, least role, JSON body): targets that do not exist, so allowed calls change nothing.
ENDPOINTS: list[tuple[str, str, str, Any]] = [
    ("GET", "/info", "viewer", None),
    ("GET", "/workers", "viewer", None),
    ("GET", "/workflows", "viewer", None),
    ("GET", "/workflows/counts", "viewer", None),
    ("GET", WF, "viewer", None),
    ("GET", f"{WF}/events", "viewer", None),
    ("GET", f"{WF}/consistency", "viewer", None),
    ("POST", "/workflows", "operator", {"definition": "no-such-definition"}),
    ("POST", f"{WF}/pause", "operator", None),
    ("POST", f"{WF}/resume", "operator", None),
    ("POST", f"{WF}/cancel", "operator", None),
    ("POST", f"{WF}/retry-compensation", "operator", None),
    ("POST", "/workflows/bulk", "operator", {"action": "pause", "ids": [NOBODY]}),
    ("GET", "/definitions", "viewer", None),
    ("GET", "/definitions/no-such", "viewer", None),
    ("GET", "/definitions/no-such/versions/1", "viewer", None),
    ("POST", "/definitions", "admin", {"steps": []}),
    ("POST", "/definitions/validate", "admin", {"name": "x", "steps": []}),
    ("POST", "/definitions/no-such/versions/1/activate", "admin", None),
    ("POST", "/definitions/no-such/versions/1/deactivate", "admin", None),
    ("GET", "/services", "viewer", None),
    ("POST", "/services", "admin", {"services": {}}),
    ("GET", "/services/no-such", "viewer", None),
    ("DELETE", "/services/no-such", "admin", None),
    ("GET", "/services/no-such/breaker", "viewer", None),
    ("POST", "/services/no-such/breaker/reset", "operator", None),
    ("GET", "/services/no-such/chaos", "viewer", None),
    ("POST", "/services/no-such/chaos", "operator", {"down": True}),
    ("POST", "/services/no-such/chaos/reset", "operator", None),
    ("GET", "/waveless", "viewer", None),
    ("PUT", "/waveless/mode", "operator", {"mode": "waveless"}),
    ("PUT", "/waveless/pin", "operator", {"rate": 10_000_000}),
    ("DELETE", "/waveless/pin", "operator", None),
    ("POST", "/waveless/orders", "operator", {"orders": [{"order_id": 7}], "extra": 1}),
    ("GET", "/sla", "viewer", None),
    ("GET", "/sla/series", "viewer", None),
    ("GET", "/events", "viewer", None),
    ("GET", f"/events/stream?workflow_id={NOBODY}", "viewer", None),
    ("GET", "/keys", "admin", None),
    ("POST", "/keys", "admin", {"role": "viewer", "name": "from the role matrix"}),
    ("DELETE", "/keys/no-such", "admin", None),
    ("GET", "/audit", "operator", None),
]
RANK = {role: n for n, role in enumerate(ROLES)}


def test_every_route_is_in_the_matrix(stack):
    spec = stack.root().get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/v1")}
    covered = {(m, "/api/v1" + _template(p)) for m, p, _, _ in ENDPOINTS}
    assert routes == covered


def _template(path: str) -> str:
    path = path.split("?")[0].replace(NOBODY, "{workflow_id}")
    for old, new in (("/services/no-such", "/services/{name}"), ("/definitions/no-such", "/definitions/{name}"),
                     ("/versions/1", "/versions/{version}"), ("/keys/no-such", "/keys/{key_id}"),
                     ("/breaker/reset", "/breaker/{action}")):  # fmt: skip
        path = path.replace(old, new)
    return path


@pytest.mark.parametrize("caller", [*ROLES, "no key", "wrong key"])
@pytest.mark.parametrize(("method", "path", "least", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_role_matrix(stack, caller, method, path, least, body):
    if caller == "no key":
        http = stack.http(None)
    elif caller == "wrong key":
        http = stack.http(key="wes_000000000000_" + "x" * 43)
    else:
        http = stack.http(caller)
    r = http.request(method, path, json=body)
    if caller in ("no key", "wrong key"):
        problem(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
    elif RANK[caller] < RANK[least]:
        assert least in problem(r, 403, "forbidden")["detail"]
    else:
        assert r.status_code not in (401, 403, 429) and r.status_code < 500, f"{caller}: {r.status_code} {r.text}"
        if r.status_code == 404:
            assert "no such endpoint" not in r.json()["detail"]


def test_other_schemes_and_public_endpoints(stack):
    r = stack.http(None).get("/info", headers={"Authorization": f"Basic {stack.keys['admin']}"})
    problem(r, 401, "unauthenticated")
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert stack.root().get(path).status_code == 200, path


def test_keys_are_created_listed_and_revoked(stack):
    admin = stack.http("admin")
    created = admin.post("/keys", json={"role": "operator", "name": "floor tablet"})
    assert created.status_code == 201
    body = created.json()
    assert KEY_FORMAT.fullmatch(body["key"]) and body["key_id"] in body["key"] and body["source"] == "redis"
    listed = {k["key_id"]: k for k in admin.get("/keys").json()}
    assert "key" not in listed[body["key_id"]] and listed[body["key_id"]]["role"] == "operator"
    assert {listed[k]["source"] for k in ("env-1", "env-2", "env-3")} == {"env"}
    assert body["key"] not in admin.get("/keys").text

    tablet = stack.http(key=body["key"])
    me = tablet.get("/info").json()
    assert (me["role"], me["key_id"]) == ("operator", body["key_id"])
    problem(tablet.get("/keys"), 403, "forbidden")
    assert admin.delete(f"/keys/{body['key_id']}").status_code == 204
    problem(tablet.get("/info"), 401, "unauthenticated")
    problem(admin.delete(f"/keys/{body['key_id']}"), 404, "not-found")
    problem(admin.delete("/keys/env-1"), 409, "conflict")
    stored = stack.client.r.hget(f"{stack.settings.key_prefix}:api:keys", body["key_id"])
    assert stored is None


def test_audit_log_records_every_control_action(stack, flow):
    op = stack.http("operator")
    me = op.get("/info").json()["key_id"]
    wid = op.post("/workflows", json={"definition": flow}, headers={"Idempotency-Key": uuid.uuid4().hex}).json()
    wid = wid["workflow_id"]
    op.post(f"/workflows/{wid}/cancel", json={"reason": "audit me"})
    op.post(f"/workflows/{wid}/cancel")
    op.post("/workflows/bulk", json={"action": "resume", "ids": [wid, NOBODY]})
    op.post("/services/no-such/breaker/force-open")
    op.get(f"/workflows/{wid}")

    entries = op.get("/audit", params={"key_id": me, "limit": 100}).json()["items"]
    mine = [e for e in entries if e["target"] == wid or (isinstance(e["target"], list) and wid in e["target"])]
    assert [e["action"] for e in mine] == ["bulk_control", "cancel_workflow", "cancel_workflow", "start_workflow"]
    bulk, second, first, started = mine
    assert started["status"] == 201 and started["ok"] and started["params"]["definition"] == f"{flow}:1"
    assert first["status"] == 200 and first["params"] == {"reason": "audit me"} and first["role"] == "operator"
    assert second["status"] == 409 and not second["ok"] and second["error_code"] in ("illegal-transition",)
    assert bulk["params"]["succeeded"] == 0 and bulk["params"]["failed"] == 2
    assert all(e["method"] == "POST" and e["at"] > 0 and e["key_name"] for e in mine)
    breaker = op.get("/audit", params={"target": "no-such", "action": "control_breaker"}).json()["items"][0]
    assert (
        breaker["status"] == 404
        and breaker["error_code"] == "not-found"
        and breaker["params"]["action"] == "force-open"
    )
    failed = op.get("/audit", params={"key_id": me, "failed_only": True}).json()["items"]
    assert failed and not any(e["ok"] for e in failed)
    page = op.get("/audit", params={"key_id": me, "limit": 2}).json()
    older = op.get("/audit", params={"key_id": me, "limit": 2, "cursor": page["next_cursor"]}).json()
    assert {e["id"] for e in page["items"]}.isdisjoint(e["id"] for e in older["items"])
    assert all(k not in json.dumps(entries) for k in stack.keys.values())
    problem(stack.http("viewer").get("/audit"), 403, "forbidden")


def test_first_admin_key_and_rate_limit(redis_url, start_api):
    settings = fast_settings(redis_url)
    client = EngineClient(settings)
    key = ensure_admin_key(client, ApiSettings(engine=settings))
    assert key is not None and KEY_FORMAT.fullmatch(key)
    assert ensure_admin_key(client, ApiSettings(engine=settings)) is None
    assert ensure_admin_key(EngineClient(fast_settings(redis_url)), ApiSettings(keys="admin:x")) is None
    (record,) = client.r.hvals(f"{settings.key_prefix}:api:keys")
    assert key not in record and json.loads(record)["role"] == "admin"

    api = start_api(settings, {}, rate_limit_per_second=0.5, rate_limit_burst=3)
    admin = httpx.Client(base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, trust_env=False)
    assert admin.get("/info").json()["role"] == "admin"
    other = admin.post("/keys", json={"role": "operator", "name": "second"}).json()["key"]
    bulk = {"action": "pause", "ids": [NOBODY]}
    assert [admin.post("/workflows/bulk", json=bulk).status_code for _ in range(2)] == [200, 200]
    limited = problem(admin.post("/workflows/bulk", json=bulk), 429, "rate-limited")
    assert "0.5/s" in limited["detail"]
    retry_after = int(admin.post("/workflows/bulk", json=bulk).headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert all(admin.get("/workflows").status_code == 200 for _ in range(10))
    op = httpx.Client(base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {other}"}, trust_env=False)
    assert op.post("/workflows/bulk", json=bulk).status_code == 200
    problem(op.get("/services/anything/chaos"), 404, "chaos-disabled")
    time.sleep(2.1)
    assert admin.post("/workflows/bulk", json=bulk).status_code == 200
    audit = admin.get("/audit", params={"failed_only": True}).json()["items"]
    assert {e["status"] for e in audit} == {429}


@pytest.mark.unit
def test_keys_file_holds_hashes(tmp_path, capsys):
    assert _main(["hash", "operator", "s3cret-key"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert hashed.startswith("operator:sha256:") and "s3cret-key" not in hashed
    path = tmp_path / "keys"
    path.write_text(f"# floor\n{hashed}\nviewer:plain-key  # a comment\n\n")
    keys = configured_keys(ApiSettings(keys="admin:from-env", keys_file=path))
    assert [(k.key_id, k.role.value, k.source) for k in keys] == [
        ("env-1", "admin", "env"), ("file-1", "operator", "file"), ("file-2", "viewer", "file")
    ]  # fmt: skip
    assert keys[1].matches("s3cret-key") and not keys[1].matches("s3cret-kez") and keys[2].matches("plain-key")
    for bad in ("root:key", "operator:sha256:zz:yy", "operator:"):
        path.write_text(bad + "\n")
        with pytest.raises(ConfigurationError):
            configured_keys(ApiSettings(keys_file=path))
    with pytest.raises(ConfigurationError):
        configured_keys(ApiSettings(keys="nocolon"))
