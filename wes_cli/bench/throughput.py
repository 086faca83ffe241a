"""``wes bench``: throughput and latency of the engine, and of the naive design it replaces, on one server.

One run starts its own Redis (an :class:`~engine.persistence.embedded.EmbeddedRedis` in a temp home, AOF everysec)
or uses ``redis_url`` under a unique key prefix, runs ``workflows`` sagas of ``steps`` no-op steps on
``workers`` worker processes, and then, on the same server, the naive design: one plain RQ job per step,
each enqueuing the next, on default (forking) ``rq worker`` processes. Everything it starts is torn down
in ``finally``, even on Ctrl-C.

The naive baseline is given its best case: ``rq worker -c wes_cli.bench.throughput`` imports this module in the worker
before it forks, so a horse does not import the engine (~0.5 s here) for every job; without that it runs
at ~2 steps/s per worker and the ratio would mean nothing. (RQ reads a ``-c`` module's UPPERCASE names as
its settings: none defined here is an RQ setting, so keep it that way.)
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.client import EngineClient
from engine.persistence.connection import connect, server_version
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool
from wes_cli.bench.support import delete_keys, naive_queue, stop_procs, wait_for

HANDLER = "wes_cli.bench.throughput:noop"
NAIVE_FUNC = "wes_cli.bench.throughput.naive_step"
POLL_S = 0.01
COMPLETION_TIMEOUT_S = 120.0
REGISTER_TIMEOUT_S = 30.0
SNAPSHOT_BATCH = 500
FAILED_STATUSES = ("FAILED", "TIMEOUT", "COMPENSATING", "COMPENSATED", "CANCELLED")
"""Statuses of a bench saga that did not complete (a no-op step should never get there)."""
TERMINAL_FAILURES = ("COMPENSATED", "CANCELLED")


def noop(ctx) -> None:
    """Step handler and compensation of the bench definition: does nothing."""
    return None


def naive_step(run: str, wf: int, i: int, total: int) -> None:
    """The naive design's job: step ``i`` of ``total`` of naive workflow ``wf`` enqueues step ``i + 1``;
    the last step counts the workflow as done."""
    from rq import Queue, get_current_job

    job = get_current_job()
    conn = job.connection
    if i >= total:
        conn.incr(_naive_done_key(run))
        return
    Queue(job.origin, connection=conn).enqueue(NAIVE_FUNC, run, wf, i + 1, total, job_id=f"{run}-n{wf}-{i + 1}")


def bench_definition(steps: int) -> dict[str, Any]:
    return {
        "name": f"bench-{steps}steps",
        "description": "wes bench: no-op steps",
        "consistency": "AT_LEAST_ONCE",
        "steps": [
            {
                "id": f"s{i}",
                "action": HANDLER,
                "compensation": {"type": "UNDO", "action": HANDLER},
                "timeout": 30,
            }
            for i in range(1, steps + 1)
        ],
    }


def run_bench(
    workflows: int = 2000,
    steps: int = 6,
    workers: int = 2,
    rate: float | None = None,
    naive_workflows: int | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Run the bench and return its figures (see the module docstring)."""
    if workflows < 1 or steps < 1 or workers < 1:
        raise ValueError("workflows, steps and workers must be >= 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    naive_n = min(workflows, 100) if naive_workflows is None else naive_workflows
    wall0 = time.perf_counter()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    tmp = Path(tempfile.mkdtemp(prefix="wes-bench-"))
    server: EmbeddedRedis | None = None
    pool: WorkerPool | None = None
    rq_procs: list[subprocess.Popen] = []
    client: EngineClient | None = None
    url = redis_url
    try:
        if url is None:
            server = EmbeddedRedis(tmp / "home", port=free_port(), fsync="everysec")
            url = server.start().url
        settings = EngineSettings(redis_url=url, key_prefix=prefix)
        client = EngineClient(settings)
        version = ".".join(str(x) for x in server_version(client.engine.stores.client))
        definition, _ = client.apply_definition(bench_definition(steps))

        pool = WorkerPool(
            settings, concurrency=workers, log_level="WARNING", grace_seconds=20.0, log_file=str(tmp / "workers.log")
        )
        pool.start()
        wait_for(
            lambda: len(client.workers()) >= workers,
            REGISTER_TIMEOUT_S,
            "engine workers to register",
            pool,
            log=tmp / "workers.log",
        )

        cpu0 = _cpu_seconds(pool.pids), _redis_cpu_seconds(client)
        bench_epoch = time.time()
        ids, start_lat, first_start = _issue_starts(client, definition.name, definition.version, workflows, rate)
        counts = _wait_completion(client, workflows)
        cpu1 = _cpu_seconds(pool.pids), _redis_cpu_seconds(client)
        snaps = _read_snapshots(client, ids)
        pool.stop()
        pool = None
        hist, _counters = client.stats(since_s=bench_epoch - 10)

        completed = [s for s in snaps if s.get("status") == "COMPLETED"]
        finished = [s["time_constraints"]["finished_at"] for s in completed]
        e2e = sorted(s["time_constraints"]["finished_at"] - s["time_constraints"]["created_at"] for s in completed)
        span = (max(finished) - first_start) if finished else 0.0
        n_done = len(completed)
        persist = hist.get("state_persistence")
        overhead = hist.get("step_overhead")

        naive_sps, naive_elapsed = _naive_bench(settings, prefix, naive_n, steps, workers, tmp, rq_procs)

        steps_per_s = n_done * steps / span if n_done else 0.0
        result: dict[str, Any] = {
            "workflows": workflows,
            "steps": steps,
            "workers": workers,
            "rate": rate,
            "naive_workflows": naive_n,
            "redis_version": version,
            "server": "external" if redis_url else "embedded",
            "completed": n_done,
            "failed": sum(counts.get(st, 0) for st in FAILED_STATUSES),
            "unfinished": workflows - n_done - sum(counts.get(st, 0) for st in FAILED_STATUSES),
            "final_counts": {k: v for k, v in counts.items() if v},
            "steps_per_s": round(steps_per_s, 1),
            "workflows_per_s": round(n_done / span, 1) if n_done else 0.0,
            "run_s": round(span, 3) if n_done else None,
            "start_p50_ms": _ms(_quantile(start_lat, 0.5)),
            "start_p99_ms": _ms(_quantile(start_lat, 0.99)),
            "start_max_ms": _ms(start_lat[-1] if start_lat else None),
            "e2e_p50_ms": _ms(_quantile(e2e, 0.5)),
            "e2e_p99_ms": _ms(_quantile(e2e, 0.99)),
            "e2e_max_ms": _ms(e2e[-1] if e2e else None),
            "persist_p50_ms": _ms(persist.quantile(0.5) if persist else None),
            "persist_p99_ms": _ms(persist.quantile(0.99) if persist else None),
            "step_overhead_p50_ms": _ms(overhead.quantile(0.5) if overhead else None),
            "step_overhead_p99_ms": _ms(overhead.quantile(0.99) if overhead else None),
            "worker_cpu_us_per_step": _per_step_us(cpu0[0], cpu1[0], n_done * steps),
            "redis_cpu_us_per_step": _per_step_us(cpu0[1], cpu1[1], n_done * steps),
            "rq_job_per_step_steps_per_s": round(naive_sps, 1),
            "rq_job_per_step_run_s": round(naive_elapsed, 3),
            "ratio_vs_rq_job_per_step": round(steps_per_s / naive_sps, 2) if naive_sps else None,
        }
        result["wall_s"] = round(time.perf_counter() - wall0, 2)
        return result
    finally:
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.stop()
        stop_procs(rq_procs)
        if client is not None:
            with contextlib.suppress(Exception):
                client.engine.stores.client.close()
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()
        elif url is not None:
            with contextlib.suppress(Exception):
                delete_keys(url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------- engine
def _issue_starts(
    client: EngineClient, name: str, version: int | None, n: int, rate: float | None
) -> tuple[list[str], list[float], float]:
    """Start ``n`` workflows sequentially (open loop at ``rate``/s if given); returns their ids, the
    sorted latency of each start (s) and the epoch at which the first start was issued."""
    ids: list[str] = []
    lat: list[float] = []
    pc = time.perf_counter
    first_epoch = time.time()
    t0 = pc()
    for i in range(n):
        if rate is not None:
            due = t0 + i / rate
            delay = due - pc()
            if delay > 0:
                time.sleep(delay)
        s = pc()
        res = client.start(name, {}, version=version)
        lat.append(pc() - s)
        ids.append(res["workflow_id"])
    lat.sort()
    return ids, lat, first_epoch


def _wait_completion(client: EngineClient, n: int) -> dict[str, int]:
    deadline = time.monotonic() + COMPLETION_TIMEOUT_S
    while True:
        counts = client.counts()
        done = counts.get("COMPLETED", 0) + sum(counts.get(s, 0) for s in TERMINAL_FAILURES)
        if done >= n or time.monotonic() > deadline:
            return counts
        time.sleep(POLL_S)


def _read_snapshots(client: EngineClient, ids: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), SNAPSHOT_BATCH):
        out.extend(client.engine.stores.workflows.snapshots(ids[i : i + SNAPSHOT_BATCH]))
    return out


# ---------------------------------------------------------------------------------------- naive RQ
def _naive_done_key(run: str) -> str:
    return f"{run}:naive:done"


def _naive_bench(
    settings: EngineSettings, run: str, n: int, steps: int, workers: int, tmp: Path, procs: list[subprocess.Popen]
) -> tuple[float, float]:
    """Steps/s of one plain RQ job per step on ``workers`` default (forking) ``rq worker`` processes."""
    if n <= 0:
        return 0.0, 0.0
    from rq import Queue, Worker

    url = str(settings.redis_url)
    conn = connect(settings, decode=False, url=url)  # RQ stores bytes
    qname = naive_queue(run)
    queue = Queue(qname, connection=conn)
    rq_bin = str(Path(sys.executable).parent / "rq")
    with open(tmp / "rq-workers.log", "ab") as log:
        for k in range(workers):
            procs.append(
                subprocess.Popen(
                    # -c: the rq CLI imports its config module in the worker, so every forked horse
                    # inherits the job's module instead of importing the engine (~0.5 s) per job.
                    [rq_bin, "worker", qname, "--url", url, "--name", f"{run}-naive-{k}", "-c", __name__],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                )
            )

    def registered() -> bool:
        return len(Worker.all(queue=queue)) >= workers

    wait_for(registered, REGISTER_TIMEOUT_S, "rq workers to register", None, procs, log=tmp / "rq-workers.log")
    done_key = _naive_done_key(run)
    conn.delete(done_key)
    t0 = time.perf_counter()
    for wf in range(n):
        queue.enqueue(NAIVE_FUNC, run, wf, 1, steps, job_id=f"{run}-n{wf}-1")
    deadline = time.monotonic() + COMPLETION_TIMEOUT_S
    while int(conn.get(done_key) or 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"naive RQ baseline: {conn.get(done_key) or 0} of {n} workflows done")
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - t0
    stop_procs(procs)
    return n * steps / elapsed, elapsed


def _cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of the processes so far (Linux /proc; None elsewhere). Unlike throughput,
    CPU per step barely moves when other programs share the machine."""
    total = 0.0
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total


def _redis_cpu_seconds(client: EngineClient) -> float | None:
    info = client.engine.stores.client.info("cpu")
    try:
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except (KeyError, ValueError):
        return None


def _per_step_us(before: float | None, after: float | None, steps: int) -> float | None:
    if before is None or after is None or not steps:
        return None
    return round((after - before) / steps * 1e6, 1)


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Exact nearest-rank quantile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
