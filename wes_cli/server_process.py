"""An HTTP server in a child process, as a `wes up` component: started in its own session with its
output in a log file, ready when its health URL answers 200, restarted by ``check`` if it died,
stopped with SIGTERM (then killed after a grace period), killed at once by ``kill``.

Subclasses say what to run (``command``, ``environment``) and where it answers (``health_path``);
the control API and the dashboard (``wes_cli.components``) are two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx

from wes_cli.supervisor import Component

STOP_GRACE_S = 10.0


class ServerProcessError(RuntimeError):
    pass


class ServerProcess(Component):
    name = "server"
    health_path = "/healthz"
    start_timeout = 20.0
    poll_s = 0.1

    def __init__(self, port: int, *, host: str = "127.0.0.1", log_file: Path | None = None, cwd: Path | None = None):
        self.port, self.host, self.log_file, self.cwd = port, host, log_file, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def info(self) -> dict[str, Any]:
        """What ``start`` returns (the banner and ``--json`` show it)."""
        assert self.proc is not None
        return {"url": self.url, "pid": self.proc.pid, "log_file": self.log_file}

    def start(self) -> dict[str, Any]:
        self._close()
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._log_start = self._log.tell()
        self.proc = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=None if self.cwd is None else str(self.cwd),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self.info()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        health = f"{self.url}{self.health_path}"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerProcessError(
                    f"the {self.name} exited with code {self.proc.returncode} at start: {self.output()}"
                )
            try:
                if httpx.get(health, timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_s)
        self.kill()
        raise ServerProcessError(
            f"the {self.name} did not answer on {health} within {self.start_timeout:g}s: {self.output()}"
        )

    def output(self) -> str:
        """The end of what the process wrote since its last start."""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(self._log_start, size - 4000)
        return os.pread(fd, size - start, start).decode(errors="replace")[-2000:].strip()

    def check(self) -> None:
        """Restart the process if it died."""
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
