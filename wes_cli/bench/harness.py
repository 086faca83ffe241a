"""One timed run of sagas on the engine, shared by the benches that time sagas (``throughput``, ``http``,
``hol``): its own Redis (embedded, AOF everysec) or ``redis_url`` under a unique key prefix, ``workers``
worker processes with the worker options asked for, the sagas started and waited for, the figures every
such bench reports, and a teardown that leaves nothing behind, even on Ctrl-C."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.client import EngineClient
from engine.errors import ConfigurationError
from engine.persistence.connection import server_version
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool
from wes_cli.bench.support import (
    alive,
    cpu_seconds,
    delete_keys,
    ms,
    peak_rss_mb,
    per_step_us,
    progress,
    quantile,
    relay_logs,
    wait_for,
)

WORKER_OPTIONS = {"max_in_flight": "--max-in-flight", "step_threads": "--threads"}
"""Settings of the concurrent worker (and the ``wes bench`` option of each): passed on only where this
engine's :class:`EngineSettings` has the field, so the bench runs against an engine with or without it."""
REGISTER_TIMEOUT_S = 30.0
STALL_S = 60.0
"""Waiting for the sagas gives up when none has finished for this long (the rest are reported unfinished)."""
POLL_S = 0.01
PROGRESS_S = 5.0
SNAPSHOT_BATCH = 500
FINISHED = ("COMPLETED", "COMPENSATED", "CANCELLED")
FAILED_STATUSES = ("FAILED", "TIMEOUT", "COMPENSATING", "COMPENSATED", "CANCELLED")
"""Statuses of a bench saga that did not complete."""


def worker_settings(options: Mapping[str, int | None]) -> dict[str, int]:
    """The worker options given as :class:`EngineSettings` fields. One this engine does not have is
    refused: the bench would otherwise measure something other than what was asked."""
    fields = EngineSettings.model_fields
    out: dict[str, int] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name not in fields:
            flag = WORKER_OPTIONS.get(name, name)
            raise ConfigurationError(f"{flag}: this engine's workers have no {name} setting")
        out[name] = value
    return out


@dataclass
class Started:
    """Sagas a bench started: their ids in start order, each start's latency (s, sorted), the epoch at
    which the first start was issued and how long starting them all took (s)."""

    ids: list[str]
    latencies: list[float]
    first_epoch: float
    elapsed_s: float


@dataclass
class Window:
    """What the measured window cost: the workers' and Redis's CPU seconds at its two ends."""

    worker_cpu: tuple[float | None, float | None]
    redis_cpu: tuple[float | None, float | None]


class SagaRun:
    """Redis, an engine client and a worker pool for one bench run (a context manager)."""

    def __init__(
        self,
        redis_url: str | None,
        workers: int,
        worker_options: Mapping[str, int | None] | None = None,
        label: str = "bench",
    ):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.redis_url = redis_url
        self.workers = workers
        self.overrides = worker_settings(worker_options or {})
        self.prefix = f"{label}-{uuid.uuid4().hex[:10]}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"wes-{label}-"))
        self.worker_log = self.tmp / "workers.log"
        self.logs: list[Path] = [self.worker_log]
        """Log files of child processes, relayed to stderr at the end."""
        self.server: EmbeddedRedis | None = None
        self.pool: WorkerPool | None = None
        self.client: EngineClient | None = None
        self.url = redis_url
        self.cleanups: list[Callable[[], None]] = []
        """Run (last first) before the workers and Redis go: the sim servers, a profiler."""

    def __enter__(self) -> SagaRun:
        try:
            if self.url is None:
                self.server = EmbeddedRedis(self.tmp / "home", port=free_port(), fsync="everysec")
                self.url = self.server.start().url
            self.settings = EngineSettings(redis_url=self.url, key_prefix=self.prefix, **self.overrides)
            self.client = EngineClient(self.settings)
            progress(f"redis {self.redis_version} ({self.server_kind}), key prefix {self.prefix}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def server_kind(self) -> str:
        return "external" if self.redis_url else "embedded"

    @property
    def redis_version(self) -> str:
        return ".".join(str(x) for x in server_version(self.engine_client.engine.stores.client))

    @property
    def engine_client(self) -> EngineClient:
        assert self.client is not None, "use SagaRun as a context manager"
        return self.client

    def worker_options_in_force(self) -> dict[str, Any]:
        """The concurrent worker's settings the workers run with ({} on an engine without them)."""
        return {name: getattr(self.settings, name) for name in WORKER_OPTIONS if name in EngineSettings.model_fields}

    # ------------------------------------------------------------------------------------ workers
    def start_workers(self) -> None:
        self.pool = WorkerPool(self.settings, concurrency=self.workers, log_level="WARNING", grace_seconds=20.0,
                               log_file=str(self.worker_log))  # fmt: skip
        self.pool.start()
        client = self.engine_client
        wait_for(lambda: len(client.workers()) >= self.workers, REGISTER_TIMEOUT_S, "engine workers to register",
                 self.pool, log=self.worker_log)  # fmt: skip
        progress(f"{self.workers} worker(s) up {self.worker_options_in_force() or ''}".rstrip())

    @property
    def worker_pids(self) -> list[int]:
        return self.pool.pids if self.pool is not None else []

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.worker_pids)

    def stop_workers(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.stop()

    def begin(self) -> Window:
        return Window((cpu_seconds(self.worker_pids), None), (self._redis_cpu(), None))

    def end(self, window: Window) -> Window:
        return Window((window.worker_cpu[0], cpu_seconds(self.worker_pids)), (window.redis_cpu[0], self._redis_cpu()))

    def _redis_cpu(self) -> float | None:
        info = self.engine_client.engine.stores.client.info("cpu")
        try:
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        except (KeyError, ValueError):
            return None

    # ------------------------------------------------------------------------------------ sagas
    def start_sagas(self, plan: Sequence[tuple[str, int | None, dict[str, Any]]], rate: float | None) -> Started:
        """Start one saga per ``(definition, version, input)`` of ``plan``, sequentially (open loop at
        ``rate``/s if given)."""
        client = self.engine_client
        ids: list[str] = []
        lat: list[float] = []
        pc = time.perf_counter
        first_epoch = time.time()
        t0 = pc()
        for i, (name, version, data) in enumerate(plan):
            if rate is not None:
                delay = t0 + i / rate - pc()
                if delay > 0:
                    time.sleep(delay)
            s = pc()
            ids.append(client.start(name, data, version=version)["workflow_id"])
            lat.append(pc() - s)
        lat.sort()
        elapsed = pc() - t0
        progress(f"{len(ids)} saga(s) started in {elapsed:.2f} s")
        return Started(ids, lat, first_epoch, elapsed)

    def wait_finished(self, n: int) -> dict[str, int]:
        """Wait until ``n`` sagas have finished (COMPLETED, COMPENSATED or CANCELLED), or none has for
        :data:`STALL_S`; the counts by status. A worker that dies ends the wait with an error."""
        client = self.engine_client
        last_done, last_change, last_report = -1, time.monotonic(), time.monotonic()
        while True:
            counts = client.counts()
            done = sum(counts.get(s, 0) for s in FINISHED)
            now = time.monotonic()
            if done >= n:
                return counts
            if done != last_done:
                last_done, last_change = done, now
            elif now - last_change > STALL_S:
                progress(f"giving up: no saga finished in {STALL_S:g} s ({done} of {n} did)")
                return counts
            if now - last_report >= PROGRESS_S:
                last_report = now
                progress(f"{done} of {n} saga(s) finished")
            dead = [pid for pid in self.worker_pids if not alive(pid)]
            if dead:
                raise RuntimeError(f"worker process(es) {dead} exited during the run (see the worker log above)")
            time.sleep(POLL_S)

    def snapshots(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        repo = self.engine_client.engine.stores.workflows
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), SNAPSHOT_BATCH):
            out.extend(repo.snapshots(ids[i : i + SNAPSHOT_BATCH]))
        return out

    def engine_stats(self, since_epoch: float) -> dict[str, float | None]:
        """The engine's own step timings over the run: commit (``persist_*``) and step overhead."""
        hist, _counters = self.engine_client.stats(since_s=since_epoch - 10)
        persist, overhead = hist.get("state_persistence"), hist.get("step_overhead")
        return {
            "persist_p50_ms": ms(persist.quantile(0.5) if persist else None),
            "persist_p99_ms": ms(persist.quantile(0.99) if persist else None),
            "step_overhead_p50_ms": ms(overhead.quantile(0.5) if overhead else None),
            "step_overhead_p99_ms": ms(overhead.quantile(0.99) if overhead else None),
        }

    # ------------------------------------------------------------------------------------ teardown
    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self.cleanups.clear()
        with contextlib.suppress(Exception):
            self.stop_workers()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.engine.stores.client.close()
            self.client = None
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
            self.server = None
        elif self.url is not None:
            with contextlib.suppress(Exception):
                delete_keys(self.url, self.prefix)
        relay_logs(*self.logs)
        shutil.rmtree(self.tmp, ignore_errors=True)


def saga_figures(
    snaps: Sequence[dict[str, Any]], started: Started, steps_of: Callable[[dict[str, Any]], int]
) -> dict[str, Any]:
    """The figures of sagas that ran: counts, throughput (steps of the completed sagas over first start ->
    last completion), start and end-to-end latency (created -> finished, of the completed sagas)."""
    n = len(started.ids)
    statuses = Counter(s.get("status") for s in snaps)
    completed = [s for s in snaps if s.get("status") == "COMPLETED"]
    finished = [s["time_constraints"]["finished_at"] for s in completed]
    e2e = sorted(s["time_constraints"]["finished_at"] - s["time_constraints"]["created_at"] for s in completed)
    span = (max(finished) - started.first_epoch) if finished else 0.0
    steps_done = sum(steps_of(s) for s in completed)
    failed = sum(statuses.get(st, 0) for st in FAILED_STATUSES)
    lat = started.latencies
    return {
        "completed": len(completed),
        "failed": failed,
        "unfinished": n - len(completed) - failed,
        "final_counts": {k: v for k, v in sorted(statuses.items()) if v},
        "steps_per_s": round(steps_done / span, 1) if span > 0 else 0.0,
        "workflows_per_s": round(len(completed) / span, 1) if span > 0 else 0.0,
        "run_s": round(span, 3) if completed else None,
        "start_p50_ms": ms(quantile(lat, 0.5)),
        "start_p99_ms": ms(quantile(lat, 0.99)),
        "start_max_ms": ms(lat[-1] if lat else None),
        "e2e_p50_ms": ms(quantile(e2e, 0.5)),
        "e2e_p99_ms": ms(quantile(e2e, 0.99)),
        "e2e_max_ms": ms(e2e[-1] if e2e else None),
        "steps_done": steps_done,
    }


def cost_figures(window: Window, steps_done: int, rss_mb: float | None) -> dict[str, Any]:
    return {
        "worker_cpu_us_per_step": per_step_us(*window.worker_cpu, steps_done),
        "redis_cpu_us_per_step": per_step_us(*window.redis_cpu, steps_done),
        "worker_rss_mb": rss_mb,
    }


def first_failure(snaps: Sequence[dict[str, Any]]) -> str | None:
    """Why the first saga that did not complete did not (its first step error, else its reason); None if
    all completed."""
    for s in snaps:
        if s.get("status") == "COMPLETED":
            continue
        for step in s.get("steps") or ():
            if step.get("error"):
                return f"{s.get('status')}: step {step.get('step_id')}: {step['error']}"[:500]
        return f"{s.get('status')}: {s.get('reason')}"[:500]
    return None
