"""The API as a `wes up` component: uvicorn in a subprocess, ready when /healthz answers, stopped
with SIGTERM (uvicorn finishes the requests in flight), killed on a second Ctrl-C.

    from api.component import ApiComponent
    info = sup.start(ApiComponent(settings, port=8000, url=client.url, chaos=demo))
    # info: {"url": "http://127.0.0.1:8000", "docs": ".../docs", "pid": ..., "log_file": ...}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from engine import EngineSettings
from engine.saga.worker import settings_env
from engine.server_process import ServerProcess

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class ApiComponent(ServerProcess):
    """uvicorn serving ``api.main:create_app``; ready when /healthz answers."""

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
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, os.getcwd(), env.get("PYTHONPATH", "")) if p)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.chaos:
            env["WES_API_CHAOS_ENABLED"] = "true"
        env.update(self.extra_env)
        return env

    def info(self) -> dict[str, Any]:
        return {**super().info(), "docs": f"{self.url}/docs"}
