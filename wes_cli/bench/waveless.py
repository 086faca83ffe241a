"""``wes bench waveless``: the same bursty order stream through fixed waves and through waveless release.

One run starts its own Redis (or uses ``redis_url``), the six simulated warehouse services (one
instance each) and, per mode, ``workers`` fresh worker processes under a fresh key prefix. The order
pattern is a steady base rate with a lunch peak (``bursty``: ramping up to ``peak_rate`` between 30 %
and 40 % of the run, flat to 60 %, back down by 70 %); its arrival times are computed once and replayed
identically onto the intake in both modes, and every order becomes an ``order-fulfillment-http`` saga
(six HTTP steps through the breakers and the load balancer).

- ``fixed``: the baseline, ``wave_size`` orders every ``wave_interval`` seconds (by default a wave is
  sized for the peak, ``peak_rate * wave_interval``, so the waves keep up with the arrivals);
- ``waveless``: the adaptive controller with its defaults.

Per mode: ``orders_per_s`` (completed orders / (last completion - first arrival)), the cycle time
(arrival on the intake to saga COMPLETED: ``finished_at`` - the order's durable arrival time)
``cycle_p50_ms`` / ``cycle_p95_ms`` / ``cycle_p99_ms``, ``peak_queue_depth`` (orders waiting on the
intake) and ``max_utilization`` (sagas in flight per worker slot, or the busiest service instance as the
controller last measured it; above 1.0 sagas queue), both sampled every 50 ms. Where the cycle time goes:
``intake_wait_*`` (arrival -> saga created: waiting to be released), ``start_wait_p95_ms`` (created ->
started: waiting for a worker) and ``run_*`` (started -> completed). Also ``drain_s`` (last arrival ->
last completion), ``peak_completions_per_s`` (most completions in any 5 s), ``retries``, the
controller's ``batch_size_range`` and ``limits_sampled`` (what held releases back), the 1-minute load
average before and after (``load_1m``) and the CPU seconds of the bench's processes by role (``cpu_s``,
``cpu_ms_per_order``; Linux).

The bar (``bar_verdict``): waveless p95 at most half of fixed waves' at equal or better throughput, with
nothing lost or duplicated. ``bar.saturated`` says the engine could not serve the peak on this machine
(waveless' best 5 s below 90 % of the peak rate): both modes then queue through the peak, the p95s
are set by that backlog and the CPU the machine gave the bench (see ``docs/WAVELESS.md``), not by
the release.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

import examples
from engine.client import EngineClient
from engine.domain.waveless import Mode, OrderPattern, Pattern, ProcessingStrategy, percentile
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.saga.waveless import WavelessProcessingService
from engine.saga.waveless_controller import ARRIVED_HEADER
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool
from sim.orders import generate_orders
from wes_cli.bench.support import alive, delete_keys, relay_logs, wait_for

DEFINITION = "order-fulfillment-http"
DEFINITION_FILE = Path(examples.__file__).resolve().parent / "services" / "order_fulfillment_http.yaml"
COMPLETION_TIMEOUT_S = 120.0
REGISTER_TIMEOUT_S = 30.0
DEPTH_SAMPLE_S = 0.05
PEAK_WINDOW_S = 5.0
"""Window of ``peak_completions_per_s``: the most orders a mode completed in any 5 s."""
SATURATED = 0.9
"""Waveless completing under this share of the peak rate in its best 5 s: the engine was saturated."""
TERMINAL = ("COMPLETED", "COMPENSATED", "CANCELLED", "TIMEOUT", "FAILED")


def run_waveless_bench(
    workers: int = 2,
    rate: float = 12.0,
    peak_rate: float = 36.0,
    duration: float = 36.0,
    wave_interval: float = 5.0,
    wave_size: int | None = None,
    redis_url: str | None = None,
    *,
    modes: tuple[str, ...] = ("fixed", "waveless"),
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the bench and return ``{"fixed": {...}, "waveless": {...}, ...}`` (see the module docstring).

    ``modes`` runs only some modes (no ``bar`` then), ``settings_overrides`` are ``EngineSettings`` fields
    for both modes' workers (e.g. ``{"waveless_adjust_seconds": 0.25}`` to try the controller's knobs)."""
    from sim.launcher import SimCluster

    pattern = OrderPattern(Pattern.BURSTY, rate, duration, peak_rate)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    size = wave_size or math.ceil(pattern.peak * wave_interval)
    ProcessingStrategy(Mode.FIXED, size, wave_interval).validate()
    wall0 = time.perf_counter()
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="wes-bench-waveless-"))
    server: EmbeddedRedis | None = None
    cluster = None
    prefixes: list[str] = []
    url = redis_url
    try:
        if url is None:
            server = EmbeddedRedis(tmp / "home", port=free_port(), fsync="everysec")
            url = server.start().url
        cluster = SimCluster(url, prefix=f"bwsim-{run}", log_file=tmp / "sim.log")
        cluster.start()
        _warm(cluster)
        result: dict[str, Any] = {
            "pattern": {"name": "bursty", "rate": rate, "peak_rate": pattern.peak, "duration_s": duration,
                        "orders": len(pattern.arrivals())},
            "workers": workers,
            "fixed_waves": {"wave_size": size, "wave_interval_s": wave_interval},
            "server": "external" if redis_url else "embedded",
        }  # fmt: skip
        for mode in (Mode(m) for m in modes):
            prefix = f"bw{mode.value[:5]}-{run}"
            prefixes.append(prefix)
            result[mode.value] = _run_mode(
                url, cluster, prefix, mode, pattern, workers, size, wave_interval, tmp, settings_overrides or {}
            )
        if "fixed" in result and "waveless" in result:
            result["bar"] = bar_verdict(result["fixed"], result["waveless"], pattern.peak)
        result["wall_s"] = round(time.perf_counter() - wall0, 1)
        return result
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.stop()
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()
        elif url is not None:
            for prefix in prefixes:
                with contextlib.suppress(Exception):
                    delete_keys(url, prefix)
        relay_logs(*sorted(tmp.glob("*.log")))  # the sim servers' and the workers' output
        shutil.rmtree(tmp, ignore_errors=True)


def bar_verdict(fixed: dict[str, Any], waveless: dict[str, Any], peak_rate: float) -> dict[str, Any]:
    """The bar: waveless p95 cycle time at most half of fixed waves' at equal or better throughput, nothing
    lost or duplicated in either mode. ``saturated`` (with a ``note``): the engine could not serve the peak on
    this machine (waveless completes queued orders as fast as the engine can, so its best 5 s is the engine's
    capacity then); both modes then queued through the peak, and the p95s measure the backlog of a CPU-bound
    system more than the release."""
    fp95, wp95 = fixed.get("cycle_p95_ms"), waveless.get("cycle_p95_ms")
    p95_ratio = wp95 / fp95 if fp95 and wp95 is not None else None
    tput_ratio = waveless["orders_per_s"] / fixed["orders_per_s"] if fixed.get("orders_per_s") else None
    clean = not (fixed["lost"] or waveless["lost"] or fixed["duplicated"] or waveless["duplicated"])
    out: dict[str, Any] = {
        "waveless_p95_over_fixed_p95": _round(p95_ratio, 3),
        "waveless_throughput_over_fixed": _round(tput_ratio, 3),
        "met": bool(p95_ratio is not None and tput_ratio is not None and p95_ratio <= 0.5 and tput_ratio >= 1.0
                    and clean),
    }  # fmt: skip
    best = waveless.get("peak_completions_per_s") or 0.0
    out["saturated"] = best < SATURATED * peak_rate
    if out["saturated"]:
        load = (waveless.get("load_1m") or [None, None])[-1]
        out["note"] = (
            f"the engine could not keep up with the peak on this machine (at best {best:g} orders/s against "
            f"{peak_rate:g}/s offered; load average {load}): both modes queued through it, so the p95s measure "
            "the backlog of a CPU-bound system more than the release"
        )
    return out


def _warm(cluster) -> None:
    """A few calls to every simulated instance, so neither mode pays for cold servers."""
    from sim.services import SERVICES

    with httpx.Client(trust_env=False, timeout=5.0) as http:
        for inst in cluster.instances:
            forward, _ = SERVICES[inst.service]
            for i in range(10):
                body = {"workflow_id": f"warm-{i}", "step_id": "warm", "input": {"order_id": f"warm-{i}"}}
                http.post(f"{inst.url}/{forward}", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})


def _run_mode(
    url: str,
    cluster,
    prefix: str,
    mode: Mode,
    pattern: OrderPattern,
    workers: int,
    wave_size: int,
    wave_interval: float,
    tmp: Path,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    settings = EngineSettings(
        **{
            "redis_url": url,
            "key_prefix": prefix,
            "waveless_definition": DEFINITION,
            "waveless_mode": mode.value,
            "waveless_wave_size": wave_size,
            "waveless_wave_interval_seconds": wave_interval,
            **overrides,
        }
    )
    client = EngineClient(settings)
    pool: WorkerPool | None = None
    stop = threading.Event()
    sampler: threading.Thread | None = None
    try:
        client.services.apply(cluster.services_config())
        client.apply_file(DEFINITION_FILE)
        service = client.engine.waveless(name=f"bench-{mode.value}")
        log = tmp / f"{mode.value}-workers.log"
        pool = WorkerPool(settings, concurrency=workers, log_level="WARNING", grace_seconds=20.0, log_file=str(log))
        pool.start()
        wait_for(lambda: len(client.workers()) >= workers, REGISTER_TIMEOUT_S, "workers to register", pool, log=log)
        wait_for(lambda: service.store.leader() is not None, REGISTER_TIMEOUT_S, "a release leader", pool, log=log)
        time.sleep(0.5)  # let every worker finish starting up before the first order
        # The wave schedule starts with the stream.
        service.enable_waveless_mode(ProcessingStrategy(mode, wave_size, wave_interval), by="bench")

        samples: dict[str, Any] = {"depth": 0, "utilization": 0.0, "in_flight": 0, "batch": [], "limits": {}}
        load_before = os.getloadavg()[0]
        cpu_before = _cpu_by_role()
        sampler = threading.Thread(target=_sample, args=(service, samples, stop), name="bench-sampler", daemon=True)
        sampler.start()
        order_ids: list[str] = []
        gen = generate_orders(service, pattern, on_submit=lambda acc: order_ids.extend(a["order_id"] for a in acc))
        n = len(order_ids)
        deadline = time.monotonic() + COMPLETION_TIMEOUT_S
        while True:
            counts = client.counts()
            if sum(counts.get(s, 0) for s in TERMINAL) >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mode.value}: {sum(counts.get(s, 0) for s in TERMINAL)} of {n} orders finished")
            if pool.pids and not all(alive(p) for p in pool.pids):
                raise RuntimeError(f"{mode.value}: a worker process died (see {log})")
            time.sleep(0.05)
        stop.set()
        sampler.join(5)
        load_after = os.getloadavg()[0]
        cpu_after = _cpu_by_role()
        snaps = _snapshots(client)
        state = service.status(decisions=0)
        decisions = service.store.decisions(settings.waveless_decisions_maxlen)
    finally:
        stop.set()
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.stop()
        with contextlib.suppress(Exception):
            client.engine.stores.client.close()

    by_order: dict[str, list[dict[str, Any]]] = {}
    for s in snaps:
        by_order.setdefault(s.get("correlation_id") or "", []).append(s)
    done = [s for s in snaps if s["status"] == "COMPLETED"]
    arrived = {s["workflow_id"]: float(s["context"]["headers"][ARRIVED_HEADER]) for s in snaps}
    cycles = sorted(s["time_constraints"]["finished_at"] - arrived[s["workflow_id"]] for s in done)
    # Where the cycle time goes: waiting on the intake (arrival -> saga created), waiting for a worker
    # (created -> started) and running (started -> finished).
    tcs = [(s["time_constraints"], arrived[s["workflow_id"]]) for s in done]
    intake_wait = sorted(tc["created_at"] - a for tc, a in tcs)
    start_wait = sorted(tc["started_at"] - tc["created_at"] for tc, _ in tcs if tc.get("started_at"))
    run_time = sorted(tc["finished_at"] - tc["started_at"] for tc, _ in tcs if tc.get("started_at"))
    finished = sorted(s["time_constraints"]["finished_at"] for s in done)
    span = (finished[-1] - min(arrived.values())) if done else 0.0
    cpu = {role: round(cpu_after[role] - cpu_before.get(role, 0.0), 2) for role in cpu_after}
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.get("kind", "?")] = kinds.get(d.get("kind", "?"), 0) + 1
    return {
        "orders": n,
        "completed": len(done),
        "not_completed": len(snaps) - len(done),
        "lost": sum(1 for oid in order_ids if oid not in by_order),
        "duplicated": sum(1 for oid in order_ids if len(by_order.get(oid, ())) > 1),
        "orders_per_s": round(len(done) / span, 2) if span else 0.0,
        "cycle_p50_ms": _ms(percentile(cycles, 0.50)),
        "cycle_p95_ms": _ms(percentile(cycles, 0.95)),
        "cycle_p99_ms": _ms(percentile(cycles, 0.99)),
        "cycle_max_ms": _ms(cycles[-1] if cycles else None),
        "intake_wait_p50_ms": _ms(percentile(intake_wait, 0.50)),
        "intake_wait_p95_ms": _ms(percentile(intake_wait, 0.95)),
        "start_wait_p95_ms": _ms(percentile(start_wait, 0.95)),
        "run_p50_ms": _ms(percentile(run_time, 0.50)),
        "run_p95_ms": _ms(percentile(run_time, 0.95)),
        "drain_s": round(finished[-1] - max(arrived.values()), 2) if done else None,
        "peak_completions_per_s": _peak_rate(finished, PEAK_WINDOW_S),
        "retries": sum(int(s["retry_state"]["total_retries"]) for s in snaps),
        "peak_queue_depth": samples["depth"],
        "max_utilization": round(samples["utilization"], 3),
        "max_in_flight": samples["in_flight"],
        "generator": {"submitted": gen["submitted"], "elapsed_s": gen["elapsed_s"]},
        "final_batch_size": state.get("batch_size"),
        "batch_size_range": [min(samples["batch"]), max(samples["batch"])] if samples["batch"] else None,
        "limits_sampled": samples["limits"],
        "load_1m": [round(load_before, 2), round(load_after, 2)],
        "cpu_s": cpu,
        "cpu_ms_per_order": round(sum(cpu.values()) * 1000.0 / n, 1) if cpu and n else None,
        "decisions": kinds,
    }


def _sample(service: WavelessProcessingService, out: dict[str, Any], stop: threading.Event) -> None:
    """Every 50 ms, in one round trip: the queue depth, the sagas in flight, the live workers and what the
    controller last published (its service utilization, batch size and limit). Cheap on purpose: the
    sampler runs on the machine it measures."""
    meter = service.meter
    fields = ("service_utilization", "batch_size", "limit")
    while not stop.wait(DEPTH_SAMPLE_S):
        try:
            counts = meter.counts(time.time(), fields)
        except Exception:  # a sample lost is no reason to fail the bench
            continue
        service_util, batch, limit = (counts.state[f] for f in fields)
        worker_util = counts.in_flight / (max(1, counts.live_workers) * meter.worker_slots)
        out["depth"] = max(out["depth"], counts.queue_depth)
        out["in_flight"] = max(out["in_flight"], counts.in_flight)
        out["utilization"] = max(out["utilization"], worker_util, float(service_util or 0.0))
        if batch:
            out["batch"].append(int(batch))
        out["limits"][limit or "?"] = out["limits"].get(limit or "?", 0) + 1


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process (the generator and the sampler: "bench")
    and its live descendants, by role: "workers", "services" (the simulated ones), "redis". Linux only
    (``/proc``); elsewhere empty."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    procs: dict[int, tuple[int, float, str]] = {}
    try:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
    except OSError:
        return {}
    me = os.getpid()
    out = {"bench": 0.0, "workers": 0.0, "services": 0.0, "redis": 0.0, "other": 0.0}
    for pid, (_, cpu, cmd) in procs.items():
        ancestor, hops = pid, 0
        while ancestor not in (me, 0, 1) and ancestor in procs and hops < 20:
            ancestor, hops = procs[ancestor][0], hops + 1
        if ancestor != me:
            continue
        if pid == me:
            role = "bench"
        elif "sim.server" in cmd:
            role = "services"
        elif "redis-server" in cmd:
            role = "redis"
        elif "worker" in cmd:
            role = "workers"
        else:
            role = "other"
        out[role] += cpu
    return out


def _snapshots(client: EngineClient) -> list[dict[str, Any]]:
    stores = client.engine.stores
    ids = stores.client.zrange(stores.keys.by_definition(DEFINITION), 0, -1)
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        out.extend(stores.workflows.snapshots(ids[i : i + 500]))
    return out


def _peak_rate(times: list[float], window: float) -> float | None:
    """The most events in any ``window`` seconds of the sorted ``times``, per second."""
    if not times:
        return None
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return round(best / window, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
