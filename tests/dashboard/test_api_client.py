"""``dashboard.api_client`` against the real API: answers decoded, every failure an ApiError with
the problem's detail (or why the API was not reached)."""

from __future__ import annotations

import httpx
import pytest

from dashboard.api_client import ApiClient, ApiError, error_from
from engine.persistence.embedded import free_port

pytestmark = pytest.mark.timeout(60)


def test_reads_and_role(stack, flow):
    viewer = ApiClient(stack.url, stack.keys["viewer"])
    assert viewer.info()["role"] == "viewer"
    assert ApiClient(stack.url + "/", stack.keys["admin"]).info()["role"] == "admin"
    assert {d["name"] for d in viewer.definitions()} >= {flow}
    page = viewer.workflows(definition=flow, limit=1)
    assert set(page) == {"items", "next_cursor"}
    assert [t["name"] for t in viewer.sla(60)["targets"]][:2] == ["workflow_start", "step_execution"]
    assert viewer.series(step=60)["step_s"] == 60


def test_problems_become_api_errors(stack, flow):
    viewer = ApiClient(stack.url, stack.keys["viewer"])
    with pytest.raises(ApiError) as caught:
        viewer.workflow("0123456789abcdef")
    err = caught.value
    assert (err.status, err.code) == (404, "not-found") and err.detail == "no workflow with id '0123456789abcdef'"
    assert str(err) == "no workflow with id '0123456789abcdef' (HTTP 404, not-found)"

    with pytest.raises(ApiError) as caught:
        viewer.control("0123456789abcdef", "pause")
    assert caught.value.status == 403 and caught.value.code == "forbidden"

    with pytest.raises(ApiError) as caught:
        ApiClient(stack.url, "wrong").info()
    assert caught.value.unauthenticated and caught.value.detail

    with pytest.raises(ApiError) as caught:
        ApiClient(stack.url, stack.keys["operator"]).pin(batch_size=10_000)
    assert caught.value.status == 422 and caught.value.problem["status"] == 422

    with pytest.raises(ValueError, match="unknown control"):
        viewer.control("x", "explode")


@pytest.mark.unit
def test_an_unreachable_api():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiError) as caught:
        ApiClient(url, "k").info()
    assert caught.value.unreachable and url in caught.value.detail and str(caught.value) == caught.value.detail
    with pytest.raises(ApiError, match="not a valid API address"):
        ApiClient("http://[::1", "k").info()


@pytest.mark.unit
def test_an_answer_that_is_not_a_problem():
    request = httpx.Request("GET", "http://api/api/v1/info")
    err = error_from(httpx.Response(502, text="<html>bad gateway</html>", request=request))
    assert err.status == 502 and err.detail == "GET /api/v1/info: <html>bad gateway</html>"
    limited = error_from(httpx.Response(429, json={"detail": "slow down", "code": "rate-limited"},
                                        headers={"Retry-After": "2"}, request=request))  # fmt: skip
    assert limited.detail == "slow down (retry after 2 s)" and limited.code == "rate-limited"
    listed = error_from(httpx.Response(422, json={"detail": "bad input", "problems": ["a: missing", "b: no"]},
                                       request=request))  # fmt: skip
    assert listed.detail == "bad input\n- a: missing\n- b: no"
