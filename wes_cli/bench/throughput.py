"""``wes bench``: throughput and latency of the engine, and of the naive design it replaces, on one server.

One run starts its own Redis (an :class:`~engine.persistence.embedded.EmbeddedRedis` in a temp home, AOF everysec)
or uses ``redis_url`` under a unique key prefix, runs ``workflows`` sagas of ``steps`` no-op steps on
``workers`` worker processes, and then, on the same server, the naive design: one plain RQ job per step,
each enqueuing the next, on default (forking) ``rq worker`` processes. Everything it starts is torn down
at the end, even on Ctrl-C (:class:`~wes_cli.bench.harness.SagaRun`).

With ``step_latency`` every step instead waits that long, as a service call does: a ``def`` handler that
sleeps or an ``async def`` one that awaits (``handler``, see :mod:`wes_cli.bench.handlers`). Then the naive
baseline runs only if ``naive_workflows`` asks for it (its jobs sleep too): one waiting step at a time per
forking worker would take minutes.

The naive baseline is given its best case: ``rq worker -c wes_cli.bench.throughput`` imports this module in the worker
before it forks, so a horse does not import the engine (~0.5 s here) for every job; without that it runs
at ~2 steps/s per worker and the ratio would mean nothing. (RQ reads a ``-c`` module's UPPERCASE names as
its settings: none defined here is an RQ setting, so keep it that way.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.persistence.connection import connect
from engine.settings import EngineSettings
from wes_cli.bench.handlers import HANDLERS, LATENCY_FIELD
from wes_cli.bench.harness import SagaRun, cost_figures, first_failure, saga_figures
from wes_cli.bench.support import ms, naive_queue, stop_procs, wait_for

HANDLER = "wes_cli.bench.throughput:noop"
NAIVE_FUNC = "wes_cli.bench.throughput.naive_step"
POLL_S = 0.01
COMPLETION_TIMEOUT_S = 120.0
REGISTER_TIMEOUT_S = 30.0


def noop(ctx) -> None:
    """Step handler and compensation of the bench definition: does nothing."""
    return None


def naive_step(run: str, wf: int, i: int, total: int, latency_s: float = 0.0) -> None:
    """The naive design's job: step ``i`` of ``total`` of naive workflow ``wf`` (waiting ``latency_s``)
    enqueues step ``i + 1``; the last step counts the workflow as done."""
    from rq import Queue, get_current_job

    if latency_s:
        time.sleep(latency_s)
    job = get_current_job()
    conn = job.connection
    if i >= total:
        conn.incr(_naive_done_key(run))
        return
    Queue(job.origin, connection=conn).enqueue(
        NAIVE_FUNC, run, wf, i + 1, total, latency_s, job_id=f"{run}-n{wf}-{i + 1}"
    )


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


def latency_definition(steps: int, handler: str) -> dict[str, Any]:
    """``steps`` steps that each wait the saga's ``latency_s`` in a ``handler`` ("sync" or "async") handler."""
    return {
        "name": f"bench-{steps}steps-{handler}-wait",
        "description": f"wes bench --step-latency: steps that wait, {handler} handlers",
        "consistency": "AT_LEAST_ONCE",
        "steps": [
            {
                "id": f"s{i}",
                "action": HANDLERS[handler],
                "compensation": {"type": "UNDO", "action": HANDLER},
                "timeout": 60,
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
    *,
    step_latency: float | None = None,
    handler: str = "sync",
    max_in_flight: int | None = None,
    step_threads: int | None = None,
) -> dict[str, Any]:
    """Run the bench and return its figures (see the module docstring)."""
    if workflows < 1 or steps < 1 or workers < 1:
        raise ValueError("workflows, steps and workers must be >= 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    if step_latency is not None and step_latency < 0:
        raise ValueError("step_latency must be >= 0")
    if handler not in HANDLERS:
        raise ValueError(f"handler must be one of {', '.join(HANDLERS)}")
    latency_mode = step_latency is not None
    naive_n = (0 if latency_mode else min(workflows, 100)) if naive_workflows is None else naive_workflows
    wall0 = time.perf_counter()
    options = {"max_in_flight": max_in_flight, "step_threads": step_threads}
    with SagaRun(redis_url, workers, options) as run:
        client = run.engine_client
        spec = latency_definition(steps, handler) if latency_mode else bench_definition(steps)
        definition, _ = client.apply_definition(spec)
        data = {LATENCY_FIELD: step_latency} if latency_mode else {}
        run.start_workers()

        window = run.begin()
        bench_epoch = time.time()
        started = run.start_sagas([(definition.name, definition.version, data)] * workflows, rate)
        run.wait_finished(workflows)
        window = run.end(window)
        rss = run.peak_rss_mb()
        snaps = run.snapshots(started.ids)
        run.stop_workers()
        sagas = saga_figures(snaps, started, lambda _snap: steps)
        engine_stats = run.engine_stats(bench_epoch)

        rq_procs: list[subprocess.Popen] = []
        run.cleanups.append(lambda: stop_procs(rq_procs))
        run.logs.append(run.tmp / "rq-workers.log")
        naive_sps, naive_elapsed = _naive_bench(
            run.settings, run.prefix, naive_n, steps, workers, run.tmp, rq_procs, step_latency or 0.0
        )

        result: dict[str, Any] = {"workflows": workflows, "steps": steps, "workers": workers, "rate": rate}
        if latency_mode:
            result |= {"step_latency_ms": ms(step_latency), "handler": handler}
        result |= {
            "worker_options": run.worker_options_in_force(),
            "naive_workflows": naive_n,
            "redis_version": run.redis_version,
            "server": run.server_kind,
            **{k: v for k, v in sagas.items() if k != "steps_done"},
            **engine_stats,
            **cost_figures(window, sagas["steps_done"], rss),
        }
        if naive_n or not latency_mode:
            result |= {
                "rq_job_per_step_steps_per_s": round(naive_sps, 1),
                "rq_job_per_step_run_s": round(naive_elapsed, 3),
                "ratio_vs_rq_job_per_step": round(sagas["steps_per_s"] / naive_sps, 2) if naive_sps else None,
            }
        if sagas["completed"] < workflows:
            result["first_failure"] = first_failure(snaps)
        result["wall_s"] = round(time.perf_counter() - wall0, 2)
        return result


# ---------------------------------------------------------------------------------------- naive RQ
def _naive_done_key(run: str) -> str:
    return f"{run}:naive:done"


def _naive_bench(
    settings: EngineSettings,
    run: str,
    n: int,
    steps: int,
    workers: int,
    tmp: Path,
    procs: list[subprocess.Popen],
    latency_s: float = 0.0,
) -> tuple[float, float]:
    """Steps/s of one plain RQ job per step (each waiting ``latency_s``) on ``workers`` default (forking)
    ``rq worker`` processes."""
    if n <= 0:
        return 0.0, 0.0
    from rq import Queue, Worker

    url = str(settings.redis_url)
    conn = connect(settings, decode=False, url=url)  # RQ stores bytes
    qname = naive_queue(run)
    queue = Queue(qname, connection=conn)
    rq_bin = str(Path(sys.executable).parent / "rq")
    # -c: the rq CLI imports its config module in the worker, so every forked horse inherits the job's
    # module instead of importing the engine (~0.5 s) per job. WARNING: a log line per job would flood
    # the bench's stderr (and cost the baseline CPU).
    options = ["-c", __name__, "--logging_level", "WARNING"]
    with open(tmp / "rq-workers.log", "ab") as log:
        for k in range(workers):
            procs.append(
                subprocess.Popen(
                    [rq_bin, "worker", qname, "--url", url, "--name", f"{run}-naive-{k}", *options],
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
        queue.enqueue(NAIVE_FUNC, run, wf, 1, steps, latency_s, job_id=f"{run}-n{wf}-1")
    deadline = time.monotonic() + COMPLETION_TIMEOUT_S + 2 * n * steps * latency_s / workers
    while int(conn.get(done_key) or 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"naive RQ baseline: {conn.get(done_key) or 0} of {n} workflows done")
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - t0
    stop_procs(procs)
    return n * steps / elapsed, elapsed
