"""One ``wes worker`` process: an RQ worker that runs dispatch jobs.

Each process is an RQ ``SimpleWorker`` (no fork per job: a fork per step is what makes naive RQ
sagas slow) that keeps RQ's heartbeats going while a long dispatch job runs, and turns RQ's warm
shutdown into "finish the step in flight, hand the saga back".
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading

from rq.timeouts import BaseDeathPenalty
from rq.worker import SimpleWorker

from engine.settings import EngineSettings
from engine.worker.runtime import Runtime, install_runtime

log = logging.getLogger(__name__)


class NoDeathPenalty(BaseDeathPenalty):
    """Dispatch jobs bound their own duration; RQ's SIGALRM timeout would interrupt a commit."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


class WesWorker(SimpleWorker):
    death_penalty_class = NoDeathPenalty

    def __init__(self, *args, runtime: Runtime, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime = runtime

    def execute_job(self, job, queue):
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_alive, args=(job, done), name="rq-heartbeat", daemon=True)
        keeper.start()
        try:
            super().execute_job(job, queue)
        finally:
            done.set()

    def _keep_alive(self, job, done: threading.Event) -> None:
        # SimpleWorker sends no heartbeats while a job runs; without them RQ would think us dead.
        while not done.wait(min(self.job_monitoring_interval, 10)):
            execution = self.execution
            if execution is None:
                continue
            try:
                self.maintain_heartbeats(job, execution)
            except Exception:
                log.exception("RQ heartbeat failed")

    def request_stop(self, signum, frame):
        self.runtime.draining.set()
        super().request_stop(signum, frame)


def run_worker_process(settings: EngineSettings, burst: bool = False, log_level: str = "INFO") -> None:
    """Body of one worker process."""
    runtime = Runtime(settings)
    install_runtime(runtime)
    runtime.start_background()
    # Everything imported so far lives as long as the process: keep it out of the collector's way,
    # and collect young objects less often (a saga step allocates a few hundred short-lived ones).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    worker = WesWorker(
        [runtime.stores.dispatch_queue.queue],
        connection=runtime.stores.dispatch_queue.connection,
        name=runtime.name.replace(":", "-"),
        serializer="json",
        runtime=runtime,
        maintenance_interval=60,
        job_monitoring_interval=10,
    )
    try:
        worker.work(burst=burst, logging_level=log_level, with_scheduler=False)
    finally:
        runtime.shutdown()


def settings_env(settings: EngineSettings) -> dict[str, str]:
    """Environment that makes a child process build the same settings."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env["REDIS_URL" if name == "redis_url" else f"WES_{name.upper()}"] = str(value)
    return env


def main() -> None:
    """Entry point of one pooled worker process: ``python -m engine.worker.process``."""
    os.setpgrp()  # terminal Ctrl-C goes to the pool only; it sends each child one SIGTERM
    level = os.environ.get("WES_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    sys.path.insert(0, os.getcwd())
    run_worker_process(EngineSettings(), log_level=level)


if __name__ == "__main__":
    main()
