"""One real browser: Debian's headless Chromium, driven by Playwright with the system browser (no
``playwright install``), against the dashboard started as ``wes up`` starts it (DashboardComponent)
and the real API. Logs in with an operator key, opens a running workflow, clicks Pause, sees PAUSED,
saves the screenshots the README shows (docs/dashboard.png, docs/dashboard-overview.png), and sees
the page follow a change made elsewhere (live refresh, which AppTest cannot run)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.persistence.embedded import free_port
from tests.dashboard.conftest import start, status_of, wait_for
from wes_cli.components import DashboardComponent

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = [pytest.mark.timeout(120), pytest.mark.e2e]
CHROMIUM = os.environ.get("WES_CHROMIUM", "/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def dashboard(stack, tmp_path_factory) -> Iterator[DashboardComponent]:
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    component = DashboardComponent(stack.url, port=free_port(), log_file=log,
                                   env={"WES_DASHBOARD_REFRESH_SECONDS": "2"})  # fmt: skip
    info = component.start()
    assert info["url"] == component.url and info["pid"]
    try:
        yield component
    finally:
        component.stop()
        assert component.proc is not None and component.proc.poll() is not None


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (./run-tests does, as root)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def button(page, key: str):
    """The button drawn for a Streamlit widget key (Streamlit also keeps a hidden copy for sizing)."""
    return page.locator(f".st-key-{key} button").first


def settle(page) -> None:
    """Wait until Streamlit has drawn the page and no script run is in flight."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=UI_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="hidden", timeout=UI_TIMEOUT_MS)


def test_the_component_serves_the_app_and_restarts_it(dashboard):
    health = httpx.get(f"{dashboard.url}/_stcore/health", timeout=5, trust_env=False)
    assert health.status_code == 200 and health.text == "ok"
    assert "<title>" in httpx.get(dashboard.url, timeout=5, trust_env=False).text
    assert dashboard.environment()["WES_DASHBOARD_API_URL"] == dashboard.api_url
    first = dashboard.proc.pid
    dashboard.kill()
    dashboard.check()  # as `wes up` does every poll: it died, start it again
    assert dashboard.proc.pid != first and dashboard.proc.poll() is None
    assert httpx.get(f"{dashboard.url}/_stcore/health", timeout=5, trust_env=False).status_code == 200


def test_login_open_a_running_workflow_and_pause_it(stack, flow, browser, dashboard):
    slow = {"reserve": {"sleep": 1}, "charge": {"sleep": 15}, "ship": {"sleep": 1}}
    for n in range(4):  # something for the overview's charts: sagas completed and compensated
        start(stack, flow, {"ship": {"fail": "final"}} if n % 2 else {"charge": {"fail_times": 1}})
    wid = start(stack, flow, slow, correlation_id="order-4711")
    page = browser.new_page(viewport={"width": 1500, "height": 1500})
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page.goto(dashboard.url)
        page.locator(".st-key-login_key input").fill(stack.keys["operator"])
        button(page, "login_submit").click()
        page.get_by_role("heading", name="Overview").wait_for()
        page.get_by_text("role operator").first.wait_for()
        wait_for(lambda: stack.http("viewer").get(f"/workflows/{wid}").json()["steps"][1]["status"] == "RUNNING",
                 what="charge running")  # fmt: skip
        settle(page)
        page.wait_for_timeout(500)  # charts finish drawing
        page.screenshot(path=str(DOCS / "dashboard-overview.png"))

        page.locator('[data-testid="stSidebarNav"] a[href$="/workflow"]').click()
        page.get_by_role("heading", name="Workflow").wait_for()
        page.locator(".st-key-wf_goto input").fill(wid)
        page.locator(".st-key-wf_goto input").press("Enter")
        button(page, "wf_goto_go").click()
        page.get_by_text(wid).first.wait_for()
        page.get_by_text("RUNNING", exact=True).first.wait_for()
        assert status_of(stack, wid) == "RUNNING"

        button(page, "ctl_pause").click()
        page.get_by_text(f"Paused: {wid}").wait_for()
        page.get_by_text("PAUSED", exact=True).first.wait_for()
        assert status_of(stack, wid) == "PAUSED"
        sync_api.expect(button(page, "ctl_resume")).to_be_enabled()
        sync_api.expect(button(page, "ctl_pause")).to_be_disabled()
        settle(page)
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "dashboard.png"))

        # live: someone else resumes it; the page shows it within a refresh or two, untouched
        assert stack.http("operator").post(f"/workflows/{wid}/resume").status_code == 200
        sync_api.expect(button(page, "ctl_pause")).to_be_enabled(timeout=10_000)
        page.get_by_text("RUNNING", exact=True).first.wait_for(timeout=10_000)
    finally:
        page.close()
        stack.http("operator").post(f"/workflows/{wid}/cancel")
    assert (DOCS / "dashboard.png").stat().st_size > 20_000
