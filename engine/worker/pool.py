"""``wes worker --concurrency N``: runs N worker processes, restarts any that die, stops them cleanly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from engine.settings import EngineSettings
from engine.worker.process import settings_env

log = logging.getLogger(__name__)


@dataclass
class WorkerPool:
    """Runs ``concurrency`` worker processes, restarts any that die, stops them all cleanly."""

    settings: EngineSettings
    concurrency: int = 1
    log_level: str = "INFO"
    grace_seconds: float = 40.0
    log_file: str | None = None

    def __post_init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._stopping = threading.Event()

    def _spawn(self) -> subprocess.Popen:
        env = {**os.environ, **settings_env(self.settings), "WES_LOG_LEVEL": self.log_level}
        path = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONPATH"] = path
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - owned by the child
        return subprocess.Popen([sys.executable, "-m", "engine.worker.process"], env=env, stdout=out, stderr=out)

    def start(self) -> None:
        self._procs = [self._spawn() for _ in range(self.concurrency)]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def supervise(self, poll: float = 0.5) -> None:
        """Block, restarting dead workers, until stop() is called."""
        while not self._stopping.wait(poll):
            self.check()

    def check(self) -> None:
        for i, proc in enumerate(self._procs):
            if proc.poll() is not None and not self._stopping.is_set():
                log.warning("worker pid %s exited with %s; starting a new one", proc.pid, proc.returncode)
                self._procs[i] = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.grace_seconds
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %s did not stop in %.0fs; killing it", proc.pid, self.grace_seconds)
                proc.kill()
                proc.wait(5)
