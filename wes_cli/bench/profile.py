"""Where the worker processes' CPU goes, by sampling them with py-spy (``wes bench --http``).

py-spy (a sampling profiler that reads a running interpreter's stacks from outside) records every worker
over the measured window, without pausing it (``--nonblocking``), at :data:`RATE_HZ`; samples of threads
that wait (the OS says they sleep: a socket, a lock, the event loop's select) are left out, so what is
counted is where CPU was spent. Each sample is attributed, from the innermost frame outwards, to the first
frame that is HTTP-client code (:data:`HTTP_CLIENT`) or breaker/load-balancer code (:data:`BREAKER_LB`);
a stack with neither is engine. Library frames in between (redis-py, asyncio, json) go with the code that
called them: the breaker's round trips to Redis count as breaker, the saga's commits as engine. The
worker CPU per step (``/proc`` utime + stime) is then split in proportion to the samples.

Attaching needs ptrace rights over the workers (root, CAP_SYS_PTRACE or ``kernel.yama.ptrace_scope`` 0);
without them, or without py-spy, the split is None and ``problem`` says why.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RATE_HZ = 100
TOP_FRAMES = 5
ATTACH_WAIT_S = 1.0
"""How long a py-spy gets to attach before the run starts (one that cannot exits at once)."""
STOP_GRACE_S = 15.0
BUCKETS = ("http_client", "breaker_lb", "engine")
HTTP_CLIENT_PACKAGES = ("httpx", "httpcore", "h11", "h2", "hpack", "anyio", "sniffio", "certifi", "httptools")
HTTP_CLIENT_ENGINE = "engine/integration/http_client"
"""The worker's own HTTP/1.1 client (keep-alive connections, httptools parsing)."""
HTTP_CLIENT_STDLIB = re.compile(r"/python3\.\d+/(ssl|socket)\.py$")
"""The standard library's ssl and socket modules (not redis-py's ``_parsers/socket.py``)."""
BREAKER_LB = (
    "engine/integration/http_service",
    "engine/persistence/service_registry",
    "engine/persistence/scripts/breaker",
    "engine/domain/services.py",
)
"""Paths (prefixes, under the repository) of the breaker and load balancer: the service port that wraps
each call in the breaker, the registry's admission/choice/outcome round trips, the breaker scripts and
the pure load-balancing rules. Any other engine module whose name says ``breaker`` or ``bulkhead`` too."""
METHOD = (
    f"py-spy record --nonblocking at {RATE_HZ} Hz on every worker over the measured window (idle threads "
    "excluded); each CPU sample goes to the innermost frame that is HTTP client (engine/integration/http_client, "
    "httptools, httpx, httpcore, h11, h2, anyio, sniffio, certifi, ssl, socket) or breaker/load balancer (engine/integration/http_service*, "
    "engine/persistence/service_registry*, breaker scripts, engine/domain/services.py, any engine module "
    "named *breaker* or *bulkhead*), else to engine (library frames such as redis-py and asyncio go with "
    "their caller); worker_cpu_us_per_step is split in proportion to the samples"
)
_FRAME_FILE = re.compile(r"\((.*):\d+\)$")
_ENGINE_BREAKER = re.compile(r"(^|/)engine/.*(breaker|bulkhead)[^/]*$")


def py_spy_binary() -> str | None:
    """py-spy next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def bucket_of(files: Sequence[str]) -> str:
    """The bucket of one sampled stack, given its frames' files from the outermost to the innermost."""
    for path in reversed(files):
        path = path.replace("\\", "/")
        if (
            any(f"/{pkg}/" in path for pkg in HTTP_CLIENT_PACKAGES)
            or HTTP_CLIENT_STDLIB.search(path)
            or HTTP_CLIENT_ENGINE in path
        ):
            return "http_client"
        if any(f"/{p}" in path or path.startswith(p) for p in BREAKER_LB) or _ENGINE_BREAKER.search(path):
            return "breaker_lb"
    return "engine"


@dataclass
class Samples:
    """CPU samples per bucket, and per bucket the innermost frames seen most (``function (dir/file:line)``)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    frames: dict[str, Counter[str]] = field(default_factory=lambda: {b: Counter() for b in BUCKETS})

    def add(self, other: Samples) -> None:
        for name in BUCKETS:
            self.counts[name] += other.counts[name]
            self.frames[name].update(other.frames[name])

    def hottest(self, n: int = TOP_FRAMES) -> dict[str, list[list[Any]]]:
        return {b: [[frame, count] for frame, count in self.frames[b].most_common(n)] for b in BUCKETS}


def parse_raw(text: str) -> Samples:
    """Samples per bucket from py-spy's raw (folded) output: one ``frame;frame;... count`` line per
    distinct stack, outermost frame first, each frame ``function (file:line)``."""
    out = Samples()
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        files = [m.group(1) for frame in frames if (m := _FRAME_FILE.search(frame))]
        name = bucket_of(files)
        out.counts[name] += int(count)
        out.frames[name][_short(frames[-1])] += int(count)
    return out


def _short(frame: str) -> str:
    """``function (/long/path/dir/file.py:12)`` -> ``function (dir/file.py:12)``."""
    m = _FRAME_FILE.search(frame)
    if m is None:
        return frame
    return f"{frame[: m.start()].rstrip()} ({'/'.join(m.group(1).split('/')[-2:])}{frame[m.end(1) : -1]})"


@dataclass
class CpuSampler:
    """One ``py-spy record`` per process of ``pids``, writing to ``workdir``; its own messages go to
    ``log`` (relayed to stderr by the bench)."""

    pids: Sequence[int]
    workdir: Path
    log: Path
    rate_hz: int = RATE_HZ
    problem: str | None = None
    _procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def start(self) -> None:
        """Attach to every process; on failure :attr:`problem` says why and nothing is sampled."""
        binary = py_spy_binary()
        if binary is None:
            self.problem = "py-spy is not installed (pip install py-spy, or the project's test extra)"
            return
        with open(self.log, "ab") as log:
            for pid in self.pids:
                command = [binary, "record", "--pid", str(pid), "--rate", str(self.rate_hz), "--nonblocking",
                           "--full-filenames", "--format", "raw", "--output", str(self._output(pid))]  # fmt: skip
                # Own session: a Ctrl-C at the terminal reaches the bench, which stops the samplers itself.
                self._procs[pid] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        time.sleep(ATTACH_WAIT_S)
        failed = [pid for pid, p in self._procs.items() if p.poll() is not None]
        if failed:
            self.problem = f"py-spy could not sample worker(s) {failed}: {self._log_tail()}"
            self.stop()

    def stop(self) -> Samples:
        """Stop sampling (SIGINT: py-spy writes what it recorded) and return the samples."""
        for p in self._procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self._procs.values():
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        samples = Samples()
        if self.problem is None:
            for pid in self._procs:
                try:
                    text = self._output(pid).read_text(errors="replace")
                except OSError:
                    self.problem = f"py-spy wrote no samples for worker {pid}: {self._log_tail()}"
                    continue
                samples.add(parse_raw(text))
        self._procs.clear()
        return samples

    def _output(self, pid: int) -> Path:
        return self.workdir / f"py-spy-{pid}.txt"

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
            return " | ".join(lines[-3:]) or "(no output)"
        return "(no output)"


def split_per_step(us_per_step: float | None, samples: Samples | None) -> dict[str, float] | None:
    """``us_per_step`` divided between the buckets in proportion to their samples."""
    total = sum(samples.counts.values()) if samples is not None else 0
    if samples is None or us_per_step is None or not total:
        return None
    return {name: round(us_per_step * samples.counts[name] / total, 1) for name in BUCKETS}
