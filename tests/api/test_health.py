"""Liveness, readiness, metrics and the OpenAPI document of the real server."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(60)


def test_health_and_readiness(stack):
    assert stack.root().get("/healthz").json() == {"status": "ok"}
    ready = stack.root().get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["workers"] >= 2
    workers = stack.http("viewer").get("/workers").json()
    assert len(workers) >= 2 and all(w["last_seen"] > 0 for w in workers)


def test_metrics_serve_the_engine_and_the_api(stack, flow):
    stack.http("viewer").get("/workflows")
    r = stack.root().get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"wes_api_requests", "wes_api_request_duration_seconds", "wes_workflows", "wes_redis_up"} <= set(families)
    routes = {s.labels.get("route") for s in families["wes_api_requests"].samples}
    assert "/api/v1/workflows" in routes and not any(r and "0123" in r for r in routes)


def test_openapi_documents_auth_problems_and_models(stack):
    spec = stack.root().get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["ApiKey"]["description"]
    }  # fmt: skip
    pause = spec["paths"]["/api/v1/workflows/{workflow_id}/pause"]["post"]
    assert pause["security"] == [{"ApiKey": []}]
    assert pause["responses"]["409"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert "Problem" in spec["components"]["schemas"]
    ok = pause["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/WorkflowDetail"}
