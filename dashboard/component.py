"""The dashboard as a `wes up` component: ``streamlit run dashboard/app.py`` in a subprocess, ready when
``/_stcore/health`` answers, stopped with SIGTERM, killed on a second Ctrl-C.

    from dashboard.component import DashboardComponent
    info = sup.start(DashboardComponent(api_url="http://127.0.0.1:8000", port=8501))
    # info: {"url": "http://127.0.0.1:8501", "api_url": ..., "pid": ..., "log_file": ...}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from dashboard.api_client import URL_ENV
from engine.server_process import ServerProcess

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
APP = PACKAGE_ROOT / "dashboard" / "app.py"


class DashboardComponent(ServerProcess):
    """``streamlit run dashboard/app.py`` against the API at ``api_url``; ready when Streamlit's own
    health endpoint answers."""

    name = "dashboard"
    health_path = "/_stcore/health"
    start_timeout = 45.0
    poll_s = 0.2

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:8000",
        port: int = 8501,
        *,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float | None = None,
    ):
        super().__init__(port, host=host, log_file=log_file, cwd=PACKAGE_ROOT)
        self.api_url = api_url.rstrip("/")
        self.extra_env = env or {}
        if start_timeout is not None:
            self.start_timeout = start_timeout

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.port", str(self.port), "--server.address", self.host,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--client.toolbarMode", "minimal",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env[URL_ENV] = self.api_url
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
        env.update(self.extra_env)
        return env

    def info(self) -> dict[str, Any]:
        return {**super().info(), "api_url": self.api_url}
