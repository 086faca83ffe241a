"""The dashboard under test talks to a real API (uvicorn subprocess) over the session's real Redis,
with real worker processes, exactly like ``tests/api``; this package runs its own stack (own key
prefix) so its workflows, breakers and waveless mode never meet the API tests'.

``AppTest`` runs the Streamlit script in this process: the API address and a role's key go in through
session state (``api_url``, ``api_key``), which the app turns into a login on its first run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.api.conftest import Stack, running_stack, start_api  # noqa: F401 - start_api is a fixture
from tests.integration.support import step

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
RUN_TIMEOUT_S = 30.0
PAGES = {
    "overview": "app_pages/overview.py",
    "workflows": "app_pages/workflows.py",
    "workflow": "app_pages/workflow.py",
    "services": "app_pages/services.py",
    "waveless": "app_pages/waveless.py",
}


@pytest.fixture(scope="session", autouse=True)
def _dashboard_env() -> Iterator[None]:
    """No read cache in tests: a page drawn right after a change must show it."""
    saved = {k: os.environ.get(k) for k in ("WES_DASHBOARD_CACHE_SECONDS", "WES_DASHBOARD_STUCK_SECONDS")}
    os.environ["WES_DASHBOARD_CACHE_SECONDS"] = "0"
    os.environ["WES_DASHBOARD_STUCK_SECONDS"] = "3"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def stack(redis_url, start_api, tmp_path_factory) -> Iterator[Stack]:  # noqa: F811 - start_api
    yield from running_stack(redis_url, start_api, tmp_path_factory.mktemp("dashboard-workers"))


@pytest.fixture(scope="session")
def flow(stack) -> str:
    """Three steps on the test handlers; ``plan`` in the input makes a step sleep or fail."""
    name = f"dash-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "steps": [step("reserve"), step("charge"), step("ship")]}
    r = stack.http("admin").post("/definitions", json=body)
    assert r.status_code == 201, r.text
    return name


def start(stack: Stack, definition: str, plan: dict[str, Any] | None = None, **fields: Any) -> str:
    body = {"definition": definition, "input": {"plan": plan or {}}, **fields}
    r = stack.http("operator").post("/workflows", json=body)
    assert r.status_code == 201, r.text
    return r.json()["workflow_id"]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout:g}s"
        time.sleep(0.05)
    return value


def status_of(stack: Stack, wid: str) -> str:
    return stack.http("viewer").get(f"/workflows/{wid}").json()["status"]


@pytest.fixture
def app(stack) -> Callable[..., AppTest]:
    """``app(role)``: the dashboard logged in with that role's key (or ``key=``), not yet run."""

    def make(role: str | None = "operator", *, key: str | None = None, url: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
        at.session_state["api_url"] = url or stack.url
        secret = key if key is not None else (stack.keys[role] if role else None)
        if secret is not None:
            at.session_state["api_key"] = secret
        return at

    return make


def open_page(at: AppTest, page: str, **state: Any) -> AppTest:
    """Run once (login, navigation), then switch to ``page`` with extra session state and run."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for k, v in state.items():
        at.session_state[k] = v
    at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def control_keys(at: AppTest) -> set[str]:
    return {k for k in button_keys(at) if k.startswith("ctl_")}


def texts(at: AppTest) -> str:
    """Every piece of text drawn (markdown, captions, alerts, metric labels and values)."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "error", "warning", "success", "info", "title", "subheader", "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)
