"""`wes bench`: throughput and latency figures (the benches themselves are in ``wes_cli.bench``)."""

from __future__ import annotations

import click

from wes_cli.app import App, emit_json, fmt_value, pass_app


@click.command()
@click.argument("kind", required=False, type=click.Choice(["waveless", "api"]))
@click.option("--workflows", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Starts per second (default: flat out).")
@click.option("--naive-workflows", type=click.IntRange(min=0), help="Workflows of the RQ-job-per-step run.")
@click.option("--breaker", "breaker_calls", type=click.IntRange(min=10), default=None, metavar="CALLS",
              help="Instead: the latency the circuit breaker and load balancer add to CALLS service calls.")  # fmt: skip
@click.option("--peak-rate", type=click.FloatRange(min=0, min_open=True), help="waveless: orders/s at the peak [36].")
@click.option("--duration", type=click.FloatRange(min=1), help="waveless: seconds of arrivals per mode [36].")
@click.option("--wave-interval", type=click.FloatRange(min=0.1), help="waveless: seconds between fixed waves [5].")
@click.option("--stored", type=click.IntRange(min=1), default=100_000, show_default=True, help="api: workflows stored.")
@click.option("--requests", type=click.IntRange(min=10), default=2000, show_default=True, help="api: timed calls each.")
@pass_app
def bench(
    app: App,
    kind: str | None,
    workflows: int,
    steps: int,
    workers: int,
    rate: float | None,
    naive_workflows: int | None,
    breaker_calls: int | None,
    peak_rate: float | None,
    duration: float | None,
    wave_interval: float | None,
    stored: int,
    requests: int,
) -> None:
    """Measure throughput and latency, against one RQ job per step.

    `wes bench waveless` instead runs one bursty order stream through fixed waves and through waveless
    release on the simulated services (--rate is then the base order rate, --workers per mode);
    `wes bench api` times the control API over HTTP with --stored workflows in Redis.
    Uses its own embedded Redis unless --redis-url/REDIS_URL is given."""
    if kind == "waveless":
        from wes_cli.bench.waveless import run_waveless_bench

        given = {"rate": rate, "peak_rate": peak_rate, "duration": duration, "wave_interval": wave_interval}
        kwargs = {k: v for k, v in given.items() if v is not None}
        result = run_waveless_bench(workers=workers, redis_url=app.settings.redis_url, **kwargs)
    elif kind == "api":
        from wes_cli.bench.api import run as run_api_bench

        result = run_api_bench(stored, requests, redis_url=app.settings.redis_url)
    elif breaker_calls is not None:
        from wes_cli.bench.breaker import run_breaker_bench

        result = run_breaker_bench(breaker_calls, redis_url=app.settings.redis_url)
    else:
        from wes_cli.bench.throughput import run_bench

        result = run_bench(
            workflows=workflows,
            steps=steps,
            workers=workers,
            rate=rate,
            naive_workflows=naive_workflows,
            redis_url=app.settings.redis_url,
        )
    if app.json:
        emit_json(result)
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        click.echo(f"{key.ljust(width)}  {fmt_value(value, 200)}")
