"""What `wes up` starts besides the exporter, the simulated services and the demo's order feed: the
embedded Redis, the worker processes, the control API and the operator dashboard.

The API and the dashboard are :class:`~wes_cli.server_process.ServerProcess` children, ready when their
health URL answers; the tests start them the same way::

    info = sup.start(ApiComponent(settings, port=8000, url=client.url, chaos=demo))
    # info: {"url": "http://127.0.0.1:8000", "docs": ".../docs", "pid": ..., "log_file": ...}
    info = sup.start(DashboardComponent(api_url="http://127.0.0.1:8000", port=8501))
    # info: {"url": "http://127.0.0.1:8501", "api_url": ..., "pid": ..., "log_file": ...}
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dashboard.api_client import URL_ENV
from engine.persistence.embedded import EmbeddedRedis
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool
from engine.worker.process import settings_env
from wes_cli.server_process import ServerProcess
from wes_cli.supervisor import Component

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
"""Where the packages ``api`` and ``dashboard`` are (the repository, or site-packages)."""
DASHBOARD_APP = PACKAGE_ROOT / "dashboard" / "app.py"


class RedisComponent(Component):
    name = "redis"

    def __init__(self, home: Path, port: int, fsync: str):
        self.server = EmbeddedRedis(home, port=port, fsync=fsync)

    def start(self) -> dict[str, Any]:
        info = self.server.start()
        return {**asdict(info), "embedded": True, "attached": not self.server.owned}

    def stop(self) -> None:
        self.server.stop()


class WorkersComponent(Component):
    name = "workers"

    def __init__(self, settings: EngineSettings, concurrency: int, log_file: Path | None):
        self.log_file = log_file
        self.pool = WorkerPool(settings, concurrency=concurrency, log_file=str(log_file) if log_file else None)

    def start(self) -> dict[str, Any]:
        self.pool.start()
        return {"count": self.pool.concurrency, "pids": self.pool.pids, "log_file": self.log_file}

    def check(self) -> None:
        self.pool.check()

    def stop(self) -> None:
        self.pool.stop()

    def kill(self) -> None:
        for pid in self.pool.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ApiComponent(ServerProcess):
    """uvicorn serving ``api.main:create_app`` in a subprocess; ready when /healthz answers, stopped with
    SIGTERM (uvicorn finishes the requests in flight), killed on a second Ctrl-C."""

    name = "api"
    health_path = "/healthz"
    start_timeout = 20.0

    def __init__(
        self,
        settings: EngineSettings,
        port: int = 8000,
        *,
        host: str = "127.0.0.1",
        url: str | None = None,
        chaos: bool = False,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        super().__init__(port, host=host, log_file=log_file)
        self.settings = settings
        self.redis_url = url or settings.redis_url
        self.chaos = chaos
        self.extra_env = env or {}

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
            "--host", self.host, "--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **settings_env(self.settings)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.getcwd(), env.get("PYTHONPATH", "")) if p)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.chaos:
            env["WES_API_CHAOS_ENABLED"] = "true"
        env.update(self.extra_env)
        return env

    def info(self) -> dict[str, Any]:
        return {**super().info(), "docs": f"{self.url}/docs"}


class DashboardComponent(ServerProcess):
    """``streamlit run dashboard/app.py`` against the API at ``api_url``; ready when Streamlit's own
    health endpoint (``/_stcore/health``) answers, stopped with SIGTERM, killed on a second Ctrl-C."""

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
            sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP),
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
