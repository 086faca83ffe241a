"""The API as a `wes up` component: uvicorn in a subprocess, ready when /healthz answers, stopped
with SIGTERM (uvicorn finishes the requests in flight), killed on a second Ctrl-C.

    from api.component import ApiComponent
    info = sup.start(ApiComponent(settings, port=8000, url=client.url, chaos=demo))
    # info: {"url": "http://127.0.0.1:8000", "docs": ".../docs", "pid": ..., "log_file": ...}
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx

from engine import EngineSettings
from engine.saga.worker import settings_env

START_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class ApiError(RuntimeError):
    pass


class ApiComponent:
    """Duck-compatible with ``engine.cli.Component`` (name, start, check, stop, kill)."""

    name = "api"

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
        self.settings, self.port, self.host = settings, port, host
        self.redis_url = url or settings.redis_url
        self.chaos = chaos
        self.log_file = log_file
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **settings_env(self.settings)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, os.getcwd(), env.get("PYTHONPATH", "")) if p)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.chaos:
            env["WES_API_CHAOS_ENABLED"] = "true"
        env.update(self.extra_env)
        return env

    def start(self) -> dict[str, Any]:
        cmd = [
            sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
            "--host", self.host, "--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip
        self._close()
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._log_start = self._log.tell()
        self.proc = subprocess.Popen(
            cmd, env=self.environment(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        return {"url": self.url, "docs": f"{self.url}/docs", "pid": self.proc.pid, "log_file": self.log_file}

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ApiError(f"the API exited with code {self.proc.returncode} at start: {self._output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise ApiError(f"the API did not answer on {self.url}/healthz within {START_TIMEOUT_S:g}s: {self._output()}")

    def _output(self) -> str:
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(self._log_start, size - 4000)
        return os.pread(fd, size - start, start).decode(errors="replace")[-2000:].strip()

    def check(self) -> None:
        """Restart the API if it died."""
        if self.proc is not None and self.proc.poll() is not None:
            self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._close()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
