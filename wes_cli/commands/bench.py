"""`wes bench`: throughput and latency figures (the benches themselves are in ``wes_cli.bench``)."""

from __future__ import annotations

from typing import Any

import click

from engine.domain.policies import parse_duration
from wes_cli.app import App, emit_json, fmt_value, pass_app


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, f"--{param.name.replace('_', '-')}")
    except ValueError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1])


@click.command()
@click.argument("kind", required=False, type=click.Choice(["waveless", "api", "hol"]))
@click.option("--workflows", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Starts per second (default: flat out).")
@click.option("--naive-workflows", type=click.IntRange(min=0),
              help="Workflows of the RQ-job-per-step run [min(workflows, 100); none with --step-latency].")  # fmt: skip
@click.option("--step-latency", callback=_duration, metavar="DURATION",
              help="Every step waits this long (e.g. 50ms), as a service call does.")  # fmt: skip
@click.option("--handler", type=click.Choice(["sync", "async"]),
              help="--step-latency: a `def` handler that sleeps or an `async def` one that awaits [sync].")  # fmt: skip
@click.option("--http", is_flag=True, help="Steps call the simulated warehouse services over HTTP.")
@click.option("--service-latency", callback=_duration, metavar="DURATION",
              help="--http / hol: each service call waits this long in the service [50ms / 2s].")  # fmt: skip
@click.option("--no-cpu-split", is_flag=True, help="--http: do not sample the workers for the CPU split.")
@click.option("--max-in-flight", type=click.IntRange(min=1), help="Step attempts in flight per worker.")
@click.option("--threads", "step_threads", type=click.IntRange(min=1), help="Threads per worker for `def` handlers.")
@click.option("--slow-sagas", type=click.IntRange(min=1), default=30, show_default=True,
              help="hol: sagas that call the slow payment service.")  # fmt: skip
@click.option("--fast-sagas", type=click.IntRange(min=1), default=60, show_default=True,
              help="hol: sagas of --steps no-op steps that never call it.")  # fmt: skip
@click.option("--breaker", "breaker_calls", type=click.IntRange(min=10), default=None, metavar="CALLS",
              help="Instead: the latency the circuit breaker and load balancer add to CALLS service calls.")  # fmt: skip
@click.option("--peak-rate", type=click.FloatRange(min=0, min_open=True), help="waveless: orders/s at the peak [36].")
@click.option("--duration", type=click.FloatRange(min=1), help="waveless: seconds of arrivals per mode [36].")
@click.option("--wave-interval", type=click.FloatRange(min=0.1), help="waveless: seconds between fixed waves [5].")
@click.option("--stored", type=click.IntRange(min=1), default=100_000, show_default=True, help="api: workflows stored.")
@click.option("--requests", type=click.IntRange(min=10), default=2000, show_default=True, help="api: timed calls each.")
@pass_app
def bench(app: App, kind: str | None, **opts: Any) -> None:
    """Measure throughput and latency, against one RQ job per step.

    `--step-latency 50ms [--handler sync|async]` makes every step wait, as a service call does;
    `--http [--service-latency 50ms]` makes every step call a simulated warehouse service over HTTP;
    `wes bench hol` starts --slow-sagas sagas calling a payment service that takes --service-latency [2s]
    together with --fast-sagas sagas of --steps no-op steps, and reports the latency of each group;
    `wes bench waveless` runs one bursty order stream through fixed waves and through waveless release on
    the simulated services (--rate is then the base order rate, --workers per mode);
    `wes bench api` times the control API over HTTP with --stored workflows in Redis.
    Progress goes to stderr, the result alone to stdout. Uses its own embedded Redis unless
    --redis-url/REDIS_URL is given."""
    _check_combination(kind, opts)
    result = _run(kind, opts, app.settings.redis_url)
    if app.json:
        emit_json(result)
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        click.echo(f"{key.ljust(width)}  {fmt_value(value, 200)}")


def _check_combination(kind: str | None, opts: dict[str, Any]) -> None:
    def refuse(option: str, where: str) -> None:
        raise click.UsageError(f"{option} applies only to {where}")

    if opts["handler"] is not None and opts["step_latency"] is None:
        refuse("--handler", "--step-latency")
    if opts["step_latency"] is not None and (opts["http"] or kind or opts["breaker_calls"] is not None):
        refuse("--step-latency", "the saga bench (not --http, --breaker, hol, waveless or api)")
    if opts["http"] and (kind or opts["breaker_calls"] is not None):
        refuse("--http", "the saga bench (not --breaker, hol, waveless or api)")
    if opts["service_latency"] is not None and not (opts["http"] or kind == "hol"):
        refuse("--service-latency", "--http and hol")
    if opts["no_cpu_split"] and not opts["http"]:
        refuse("--no-cpu-split", "--http")
    if (opts["max_in_flight"] or opts["step_threads"]) and (kind == "api" or opts["breaker_calls"] is not None):
        refuse("--max-in-flight/--threads", "benches that run workers (not api or --breaker)")


def _run(kind: str | None, opts: dict[str, Any], redis_url: str | None) -> dict[str, Any]:
    workers = {"max_in_flight": opts["max_in_flight"], "step_threads": opts["step_threads"]}
    if kind == "waveless":
        from wes_cli.bench.harness import worker_settings
        from wes_cli.bench.waveless import run_waveless_bench

        given = {k: opts[k] for k in ("rate", "peak_rate", "duration", "wave_interval")}
        kwargs = {k: v for k, v in given.items() if v is not None}
        return run_waveless_bench(workers=opts["workers"], redis_url=redis_url,
                                  settings_overrides=worker_settings(workers), **kwargs)  # fmt: skip
    if kind == "api":
        from wes_cli.bench.api import run as run_api_bench

        return run_api_bench(opts["stored"], opts["requests"], redis_url=redis_url)
    if kind == "hol":
        from wes_cli.bench.hol import run_hol_bench

        latency = opts["service_latency"]
        return run_hol_bench(opts["slow_sagas"], opts["fast_sagas"], opts["steps"],
                             2.0 if latency is None else latency, opts["workers"], redis_url, **workers)  # fmt: skip
    if opts["breaker_calls"] is not None:
        from wes_cli.bench.breaker import run_breaker_bench

        return run_breaker_bench(opts["breaker_calls"], redis_url=redis_url)
    if opts["http"]:
        from wes_cli.bench.http import run_http_bench

        latency = opts["service_latency"]
        return run_http_bench(opts["workflows"], opts["steps"], opts["workers"], 0.05 if latency is None else latency,
                              opts["rate"], redis_url, cpu_split=not opts["no_cpu_split"], **workers)  # fmt: skip
    from wes_cli.bench.throughput import run_bench

    return run_bench(
        workflows=opts["workflows"],
        steps=opts["steps"],
        workers=opts["workers"],
        rate=opts["rate"],
        naive_workflows=opts["naive_workflows"],
        redis_url=redis_url,
        step_latency=opts["step_latency"],
        handler=opts["handler"] or "sync",
        **workers,
    )
