"""Schemathesis over the OpenAPI schema, in-process (``from_asgi``) against the real Redis: no 5xx
and every response as documented (status, content type, headers, body schema), and invalid input
rejected. The live feed (infinite stream) and /readyz (503 by design without workers) are left out;
both are covered over real HTTP elsewhere."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.deps import REPEATABLE_QUERY
from api.main import create_app
from api.settings import ApiSettings
from tests.conftest import fast_settings

KEY = f"schema-{uuid.uuid4().hex}"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _app(redis_url: str):
    return create_app(ApiSettings(engine=fast_settings(redis_url), keys=f"admin:{KEY}", rate_limit_per_second=0))


# The schema is read at import from an app that never connects (nothing but /openapi.json is asked of
# it); the cases run against ``app``, connected to the test Redis. (pytest 9 breaks schemathesis'
# fixture-based lazy schemas: ``Function._nodeid``.)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app("redis://127.0.0.1:9/0")).exclude(
    path_regex=r"(/events/stream|/readyz)$"
)


@pytest.fixture(scope="module")
def app(redis_url):
    return _app(redis_url)


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, app):
    # Set on the case itself, not per call: schemathesis re-validates what it sends, so a case whose only
    # "negative" part was a missing Authorization header is then known to be valid.
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
    case.call_and_validate(checks=CHECKS, app=app)


def test_repeatable_query_parameters_are_the_schemas_arrays():
    arrays = {
        p["name"]
        for op in (o for item in schema.raw_schema["paths"].values() for o in item.values())
        for p in op.get("parameters", [])
        if p["in"] == "query" and "array" in str(p["schema"])
    }
    assert arrays == REPEATABLE_QUERY


def test_a_scalar_query_parameter_given_twice_is_rejected(stack):
    res = stack.http("viewer").get("/workflows?limit=5&limit=7")
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert "'limit' may be given once" in res.text
    assert stack.http("viewer").get("/events?type=StepExecuted&type=StepFailed").status_code == 200


def test_an_unknown_query_parameter_is_rejected_not_ignored(stack):
    res = stack.http("viewer").get("/workflows?stauts=RUNNING")
    assert res.status_code == 422, res.text
    assert "query.stauts: unknown parameter (known: " in res.json()["detail"]
    assert "status" in res.json()["detail"]
    assert stack.http("viewer").get("/workflows?status=RUNNING&order=oldest").status_code == 200
