"""`wes orders` and `wes waveless`: the continuous order flow and its release controller.

Orders go onto the durable intake; the leader among the workers releases them into sagas
(``engine/saga/waveless.py``). The demo's order feed (`wes up --demo`) is here too.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from engine.client import EngineClient
from engine.domain.waveless import Mode, OrderPattern, Pattern, ProcessingStrategy
from engine.saga.waveless import WavelessProcessingService
from sim.orders import generate_orders
from wes_cli.app import (
    App,
    CliInputError,
    emit_json,
    error_message,
    fmt_time,
    fmt_value,
    parse_input,
    pass_app,
    principal,
    print_fields,
    table,
)
from wes_cli.supervisor import Component

PATTERNS = [p.value for p in Pattern]
MODES = [m.value for m in Mode]


def service_of(app: App) -> WavelessProcessingService:
    return app.client.engine.waveless()


def _checked(fn, *args, **kwargs):
    """Domain validation errors (ValueError) as one `error:` line."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise CliInputError(str(exc))


# ====================================================================== orders
@click.group()
def orders() -> None:
    """Put orders on the intake the waveless controller releases from."""


@orders.command("submit")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="Orders to submit.")
@click.option("--input", "input_json", metavar="JSON", help="The order (the saga's input) as a JSON object.")
@click.option("--input-file", metavar="FILE", help="The order from a JSON file ('-': stdin).")
@pass_app
def orders_submit(app: App, count: int, input_json: str | None, input_file: str | None) -> None:
    """Accept orders on the intake (checked against the saga's input rules; each without an
    order_id gets one). They are released by the running workers."""
    order = parse_input(input_json, input_file) or {}
    if count > 1 and order.get("order_id"):
        raise click.UsageError("--count > 1 with an order_id in the input would submit one order several times")
    service = service_of(app)
    accepted = service.submit([dict(order) for _ in range(count)])
    depth = service.store.depth()
    if app.json:
        emit_json({"accepted": accepted, "queue_depth": depth})
        return
    for a in accepted:
        click.echo(a["order_id"])
    click.echo(f"{len(accepted)} order(s) accepted; {depth} waiting for release", err=True)


@orders.command("generate")
@click.option("--pattern", type=click.Choice(PATTERNS), default="steady", show_default=True,
              help="steady: the rate; bursty: the rate with a lunch peak mid-run; ramp: the rate up to the peak.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), required=True, help="Orders per second.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), required=True, help="Seconds.")
@click.option("--peak-rate", type=click.FloatRange(min=0, min_open=True), help="Peak of bursty/ramp [4 x rate].")
@click.option("--input", "input_json", metavar="JSON", help="Template of every order (order_id is generated).")
@pass_app
def orders_generate(
    app: App, pattern: str, rate: float, duration: float, peak_rate: float | None, input_json: str | None
) -> None:
    """Submit orders at a pattern's rate in the foreground (Ctrl-C stops early)."""
    shape = _checked(OrderPattern, Pattern(pattern), rate, duration, peak_rate)
    template = parse_input(input_json, None) or {}
    service = service_of(app)
    service.definition().prepare_input({**template, "order_id": "o-check"})  # refuse a bad template now
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: stop and print what was sent
    try:
        summary = generate_orders(service, shape, template=template, stop=stop.is_set)
    finally:
        signal.signal(signal.SIGINT, previous)
    summary["interrupted"] = stop.is_set()
    summary["queue_depth"] = service.store.depth()
    if app.json:
        emit_json(summary)
        return
    print_fields([(k.replace("_", " "), fmt_value(v)) for k, v in summary.items()])


# ====================================================================== waveless
@click.group()
def waveless() -> None:
    """The release controller: mode, batch size, rate, and why (see `wes waveless status`)."""


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.0f}%"


def print_status(st: dict[str, Any]) -> None:
    mode = st["mode"]
    if mode == Mode.FIXED.value:
        mode_text = f"fixed waves: {st.get('wave_size')} orders every {st.get('wave_interval_s')} s"
    else:
        pins = st["pins"]
        pinned = f"batch {pins['batch']}" if pins["batch"] else (f"rate {pins['rate']}/s" if pins["rate"] else "")
        mode_text = f"waveless ({'pinned ' + pinned if pinned else 'adaptive'})"
    workers, slots = st.get("live_workers"), st.get("worker_slots")
    capacity = f" of {workers} worker(s) x {slots} slots" if workers and slots else ""
    last = st.get("last_decision") or {}
    print_fields(
        [
            ("mode", mode_text),
            ("definition", st.get("definition")),
            ("leader", st.get("leader") or "none (no worker running?)"),
            ("batch size", fmt_value(st.get("batch_size"))),
            ("rate", "-" if st.get("rate") is None else f"{st['rate']:g} orders/s"),
            ("queue depth", f"{st['queue_depth']} waiting ({st['pending']} read, not yet acknowledged)"),
            ("in flight", f"{fmt_value(st.get('in_flight'))} sagas{capacity}"),
            (
                "utilization",
                f"{_pct(st.get('utilization'))} (workers {_pct(st.get('worker_utilization'))}, services "
                f"{_pct(st.get('service_utilization'))}; target {_pct(st.get('target_utilization'))})",
            ),
            ("step p95", f"{fmt_value(st.get('latency_p95_ms'))} ms (SLA {fmt_value(st.get('latency_sla_ms'))} ms)"),
            ("breakers open", fmt_value(st.get("breakers_open"))),
            ("throughput", f"{fmt_value(st.get('throughput'))} sagas/s"),
            (
                "orders",
                f"accepted {st.get('accepted_total') or 0}, released {st.get('released_total') or 0}, "
                f"rejected {st.get('rejected_total') or 0}",
            ),
            ("held back by", fmt_value(st.get("limit"))),
            ("last adjustment", f"{st.get('last_kind') or '-'}: {st.get('last_reason') or '-'}"),
            ("last decision", f"{fmt_time(last.get('at'))} {last.get('kind', '-')}: {last.get('reason', '-')}"),
            ("last error", fmt_value(st.get("last_error"))),
            ("updated", fmt_time(st.get("updated_at"))),
        ]
    )
    if st["decisions"]:
        click.echo()
        table(
            ["TIME", "KIND", "BATCH", "RATE", "QUEUE", "UTIL", "REASON"],
            [
                [fmt_time(d.get("at"), date=False), d.get("kind"), d.get("batch_size"), d.get("rate"),
                 d.get("queue_depth"), _pct(d.get("utilization")) if d.get("utilization") is not None else "-",
                 d.get("reason")]
                for d in st["decisions"]
            ],
            limit=110,
        )  # fmt: skip


@waveless.command("status")
@click.option("--decisions", type=click.IntRange(0, 1000), default=8, show_default=True, help="Latest decisions.")
@pass_app
def waveless_status(app: App, decisions: int) -> None:
    """Mode, batch size, rate, queue depth, utilization, pins, and the latest decisions with why."""
    st = service_of(app).status(decisions=decisions)
    if app.json:
        emit_json(st)
    else:
        print_status(st)


@waveless.command("mode")
@click.argument("mode", type=click.Choice(MODES))
@click.option("--wave-size", type=click.IntRange(min=1), help="fixed: orders per wave [WES_WAVELESS_WAVE_SIZE].")
@click.option("--wave-interval", type=click.FloatRange(min=0, min_open=True),
              help="fixed: seconds between waves [WES_WAVELESS_WAVE_INTERVAL_SECONDS].")  # fmt: skip
@pass_app
def waveless_mode(app: App, mode: str, wave_size: int | None, wave_interval: float | None) -> None:
    """Switch between fixed waves and waveless release (orders waiting are kept: nothing is lost or
    released twice)."""
    if mode == Mode.WAVELESS.value and (wave_size is not None or wave_interval is not None):
        raise click.UsageError("--wave-size and --wave-interval go with the fixed mode")
    s = app.settings
    strategy = _checked(
        ProcessingStrategy.parse,
        mode,
        wave_size if wave_size is not None else s.waveless_wave_size,
        wave_interval if wave_interval is not None else s.waveless_wave_interval_seconds,
    )
    st = service_of(app).enable_waveless_mode(strategy, by=principal())
    _done(app, st, f"mode {st['mode']}")


@waveless.command("pin")
@click.option("--batch", type=int, help="Hold the batch size at this.")
@click.option("--rate", type=float, help="Hold the release rate at this many orders/s.")
@pass_app
def waveless_pin(app: App, batch: int | None, rate: float | None) -> None:
    """Hold the batch size or the rate by hand (waveless mode) until `wes waveless unpin`."""
    if (batch is None) == (rate is None):
        raise click.UsageError("give exactly one of --batch and --rate")
    st = _checked(service_of(app).pin, batch=batch, rate=rate, by=principal())
    _done(app, st, f"pinned {'batch ' + str(batch) if batch is not None else f'rate {rate:g}/s'}")


@waveless.command("unpin")
@pass_app
def waveless_unpin(app: App) -> None:
    """Back to the adaptive law."""
    st = service_of(app).unpin(by=principal())
    _done(app, st, "unpinned: adaptive")


def _done(app: App, st: dict[str, Any], text: str) -> None:
    if app.json:
        emit_json(st)
        return
    note = "" if st.get("leader") else " (no worker leads the release right now: it applies once one runs)"
    click.echo(text + note)


# ====================================================================== demo feed
class OrderFeed(Component):
    """A continuous order stream onto the intake while `wes up --demo` runs (the pattern repeats)."""

    name = "order feed"

    def __init__(
        self,
        client: EngineClient,
        rate: float = 2.0,
        pattern: Pattern | str = Pattern.BURSTY,
        peak_rate: float | None = None,
        period_s: float = 60.0,
    ):
        self.service = client.engine.waveless()
        self.pattern = OrderPattern(Pattern(pattern), rate, period_s, peak_rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wes-order-feed", daemon=True)
        self.submitted = 0
        self._warned = ""

    def _run(self) -> None:
        def count(accepted: list) -> None:
            self.submitted += len(accepted)

        while not self._stop.is_set():
            try:
                generate_orders(self.service, self.pattern, stop=self._stop.is_set, repeat=True, on_submit=count)
            except Exception as exc:  # keep the demo alive; say why once per distinct problem
                message = error_message(exc)
                if message != self._warned:
                    click.echo(f"warning: order feed: {message}", err=True)
                    self._warned = message
                self._stop.wait(1.0)

    def start(self) -> dict[str, Any]:
        self._thread.start()
        p = self.pattern
        return {"pattern": p.pattern.value, "rate": p.rate, "peak_rate": p.peak, "period_s": p.duration_s}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def kill(self) -> None:
        self._stop.set()
