"""What the benches share: progress on stderr, waiting for the processes they start, stopping them,
relaying what they wrote, reading their CPU time and peak memory, and removing what a run left on an
external Redis server."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.persistence.connection import connect
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool


def naive_queue(run: str) -> str:
    """The RQ queue of the naive RQ-job-per-step baseline of bench run ``run``."""
    return f"{run}-naive"


def progress(message: str) -> None:
    """A progress line on stderr: stdout carries the result alone (one JSON document with ``--json``)."""
    print(f"wes bench: {message}", file=sys.stderr, flush=True)


def relay_logs(*paths: Path) -> None:
    """Copy what the bench's child processes wrote (to log files in the run's temporary directory, so that a
    failure can quote their tail) to stderr before the directory goes: never to stdout."""
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if text.strip():
            sys.stderr.write(f"--- {path.name} ---\n{text}{'' if text.endswith(chr(10)) else chr(10)}")
    sys.stderr.flush()


def wait_for(
    cond: Callable[[], bool],
    timeout: float,
    what: str,
    pool: WorkerPool | None,
    procs: Sequence[subprocess.Popen] = (),
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        dead = [p for p in procs if p.poll() is not None]
        if pool is not None:
            dead += [pid for pid in pool.pids if not alive(pid)]
        if dead or time.monotonic() > deadline:
            tail = ""
            if log is not None:
                with contextlib.suppress(OSError):
                    tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            problem = "a process exited" if dead else f"none after {timeout:g} s"
            raise RuntimeError(f"waiting for {what}: {problem}{tail}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); check its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_procs(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
    procs.clear()


def delete_keys(url: str, prefix: str) -> None:
    """Remove the bench's keys from an external server (SCAN: fine in a bench, never on a hot path):
    the engine's keys under the prefix, the RQ keys of its two queues (queue, registries, the jobs they
    still reference) and the queues' entries in RQ's set of queues."""
    conn = connect(EngineSettings(redis_url=url, key_prefix=prefix), url=url)
    try:
        rq_keys = list(conn.scan_iter(match=f"rq:*{prefix}*", count=1000))
        job_ids: set[str] = set()
        for key in rq_keys:
            kind = conn.type(key)
            if kind == "list" and key.startswith("rq:queue:"):
                job_ids.update(conn.lrange(key, 0, -1))
            elif kind == "zset" and not key.startswith("rq:executions:"):
                job_ids.update(conn.zrange(key, 0, -1))
        doomed = [*rq_keys, *(f"rq:{kind}:{jid}" for jid in job_ids for kind in ("job", "results", "executions"))]
        doomed += conn.scan_iter(match=f"{prefix}*", count=1000)
        for i in range(0, len(doomed), 500):
            conn.delete(*doomed[i : i + 500])
        conn.srem("rq:queues", f"rq:queue:{prefix}", f"rq:queue:{naive_queue(prefix)}")
    finally:
        conn.close()


def cpu_seconds(pids: Sequence[int]) -> float | None:
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


def peak_rss_mb(pids: Sequence[int]) -> float | None:
    """The largest peak resident set (``VmHWM``, Linux /proc) of the processes, in MiB; None when unreadable.
    Read it while they run: it is gone with the process."""
    peaks = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024.0)  # kB
                    break
        except (OSError, ValueError, IndexError):
            return None
    return round(max(peaks), 1) if peaks else None


def per_step_us(before: float | None, after: float | None, steps: int) -> float | None:
    if before is None or after is None or not steps:
        return None
    return round((after - before) / steps * 1e6, 1)


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Exact nearest-rank quantile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)
