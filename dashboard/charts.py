"""The numbers the dashboard shows and the plotly figures it draws: pure functions of what the API
returned (no Streamlit, no HTTP), so each is unit-tested on its own.

Definitions (what a tile's number means):

- **completion rate**: sagas that ended COMPLETED, per minute;
- **saga success rate**: COMPLETED / (COMPLETED + COMPENSATED) among the sagas that ended;
- **compensation rate**: sagas that began compensating (failure, timeout or cancel), per minute;
- **retry rate**: step attempts that failed and will be retried / all step attempts;
- **breaker trips**: times a circuit breaker opened;
- **service availability** (history, from the engine's rollups): service calls answered OK / all calls
  (ok + failed + refused by an open breaker or for want of a healthy instance), overall and per service;
  right now (live): services with a healthy instance and a breaker that is not open / all services;
- **service error rate** (history, per service): failed calls / calls answered or failed (ok + failed),
  the breaker's own notion of an error rate.

SLA lights: **red** the seed's target is missed (compliance below the objective), **amber** the seed's
target is met but our tighter bar (a p99) is not, **green** both met, **grey** no data in the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TARGET_UTILIZATION = 0.85
LIGHTS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", "grey": "#9e9e9e"}
STATUS_COLORS = {
    "CREATED": "#90a4ae",
    "RUNNING": "#1e88e5",
    "PAUSED": "#8e24aa",
    "COMPLETED": "#2e7d32",
    "FAILED": "#c62828",
    "TIMEOUT": "#d84315",
    "COMPENSATING": "#ef8f00",
    "COMPENSATED": "#6d4c41",
    "CANCELLED": "#616161",
}
STEP_COLORS = {
    "PENDING": "#b0bec5",
    "RUNNING": "#1e88e5",
    "COMPLETED": "#2e7d32",
    "FAILED": "#c62828",
    "SKIPPED": "#9e9e9e",
    "COMPENSATING": "#ef8f00",
    "COMPENSATED": "#6d4c41",
    "compensation": "#ef8f00",
}
FIG_HEIGHT = 200
STEP_OUTCOMES = ("completed", "failed", "retried", "recovered")


# ============================================================================== time
def to_time(epoch: float | None) -> pd.Timestamp | None:
    if epoch is None:
        return None
    return pd.Timestamp(round(float(epoch) * 1e6), unit="us", tz="UTC")


def clock(epoch: float | None) -> str:
    """``2026-01-31 08:00:01`` (UTC), or an empty string."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(epoch: float | None, now: float) -> str:
    """``12 s ago``, ``3 min ago``, ``2.5 h ago``."""
    if epoch is None:
        return "never"
    seconds = max(0.0, now - float(epoch))
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def seconds_text(value: float | None) -> str:
    """A latency for a tile: µs, ms or s with three significant digits; an em dash for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def percent_text(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{digits}f} %"


# ============================================================================== SLA
def sla_light(target: Mapping[str, Any]) -> str:
    """green / amber / red / grey for one row of ``GET /sla`` (see the module docstring)."""
    if not target.get("count"):
        return "grey"
    if target.get("met") is False:
        return "red"
    if target.get("bar_met") is False:
        return "amber"
    return "green"


def sla_tiles(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per SLA target with the texts a tile shows."""
    out = []
    for t in report.get("targets") or []:
        light = sla_light(t)
        out.append(
            {
                "name": t["name"],
                "title": (t.get("description") or t["name"]).capitalize(),
                "light": light,
                "color": LIGHTS[light],
                "count": int(t.get("count") or 0),
                "compliance": percent_text(t.get("compliance"), 2),
                "objective": percent_text(t.get("objective"), 1),
                "target": seconds_text(t.get("target_s")),
                "p90": seconds_text(t.get("p90_s")),
                "p95": seconds_text(t.get("p95_s")),
                "p99": seconds_text(t.get("p99_s")),
                "bar": seconds_text(t.get("bar_s")),
                "bar_p99": seconds_text(t.get("bar_p99_s")),
                "bar_metric": t.get("bar_metric"),
            }
        )
    return out


# ============================================================================== rollup series
SERIES_COLUMNS = (
    "time", "started", "completed", "compensated", "finished", "compensations_started", "step_attempts",
    "steps_retried", "breaker_trips", "completion_per_min", "success_rate", "compensation_per_min", "retry_rate",
    "started_per_s",
)  # fmt: skip


def series_frame(series: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /sla/series`` as one row per point with the derived rates of the tiles."""
    step = float(series.get("step_s") or 10)
    rows = []
    for p in series.get("points") or []:
        c = p.get("counters") or {}
        completed = int(c.get("workflows_finished.completed", 0))
        compensated = int(c.get("workflows_finished.compensated", 0))
        attempts = sum(int(c.get(f"steps.{o}", 0)) for o in STEP_OUTCOMES)
        retried = int(c.get("steps.retried", 0))
        comp_started = int(c.get("compensations_started", 0))
        finished = completed + compensated
        rows.append(
            {
                "time": to_time(p["start"]),
                "started": int(c.get("workflows_started", 0)),
                "completed": completed,
                "compensated": compensated,
                "finished": finished,
                "compensations_started": comp_started,
                "step_attempts": attempts,
                "steps_retried": retried,
                "breaker_trips": int(c.get("breaker_trips", 0)),
                "completion_per_min": completed * 60.0 / step,
                "success_rate": completed / finished if finished else None,
                "compensation_per_min": comp_started * 60.0 / step,
                "retry_rate": retried / attempts if attempts else None,
                "started_per_s": int(c.get("workflows_started", 0)) / step,
            }
        )
    frame = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
    for col in ("success_rate", "retry_rate"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def window_summary(frame: pd.DataFrame, seconds: float, step_s: float) -> dict[str, float | None]:
    """The tiles' current values: totals over the last ``seconds`` of the series."""
    if frame.empty:
        return {"completion_per_min": 0.0, "success_rate": None, "compensation_per_min": 0.0,
                "retry_rate": None, "breaker_trips": 0.0}  # fmt: skip
    n = max(1, math.ceil(seconds / step_s))
    tail = frame.tail(n)
    minutes = len(tail) * step_s / 60.0
    finished = float(tail["finished"].sum())
    attempts = float(tail["step_attempts"].sum())
    return {
        "completion_per_min": float(tail["completed"].sum()) / minutes,
        "success_rate": float(tail["completed"].sum()) / finished if finished else None,
        "compensation_per_min": float(tail["compensations_started"].sum()) / minutes,
        "retry_rate": float(tail["steps_retried"].sum()) / attempts if attempts else None,
        "breaker_trips": float(tail["breaker_trips"].sum()),
    }


def _small(fig: go.Figure, title: str | None = None, height: int = FIG_HEIGHT) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 8, "r": 8, "t": 32 if title else 8, "b": 8},
        title={"text": title, "font": {"size": 13}} if title else None,
        showlegend=False,
        hovermode="x unified",
    )
    fig.update_xaxes(title=None)
    fig.update_yaxes(title=None, rangemode="tozero")
    return fig


def rate_figure(
    frame: pd.DataFrame,
    column: str,
    title: str,
    *,
    percent: bool = False,
    bars: bool = False,
    target: float | None = None,
) -> go.Figure:
    """One metric of :func:`series_frame` over time (a line, or bars for counts)."""
    fig = go.Figure()
    x = frame["time"] if not frame.empty else []
    y = frame[column] if not frame.empty else []
    if bars:
        fig.add_trace(go.Bar(x=x, y=y, name=title, marker_color="#c62828"))
    else:
        fig.add_trace(go.Scatter(x=x, y=y, name=title, mode="lines+markers", line={"width": 2}, marker={"size": 4},
                                 connectgaps=False))  # fmt: skip
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", line_color=LIGHTS["green"], annotation_text="objective")
    _small(fig, title)
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


# ============================================================================== service calls (rollups)
CALL_OUTCOMES = ("ok", "failed", "refused")
ALL_SERVICES = "all services"
SERVICE_COLUMNS = ("time", "service", *CALL_OUTCOMES, "calls", "availability", "error_rate")
SERVICE_PALETTE = px.colors.qualitative.Plotly


def service_calls_frame(series: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /sla/series`` as one row per point and service (every service seen in the range, zeros
    where it had no call, so its line has gaps, not jumps), plus the ``all services`` total: the call
    outcomes, availability (ok / all calls) and error rate (failed / ok + failed); None without calls."""
    points = series.get("points") or []
    names = sorted({name for p in points for name, c in (p.get("by_service") or {}).items()
                    if any(f"service_calls.{o}" in c for o in CALL_OUTCOMES)})  # fmt: skip
    rows = []
    for p in points:
        by = p.get("by_service") or {}
        total = dict.fromkeys(CALL_OUTCOMES, 0)
        for name in names:
            counts = {o: int((by.get(name) or {}).get(f"service_calls.{o}", 0)) for o in CALL_OUTCOMES}
            for o in CALL_OUTCOMES:
                total[o] += counts[o]
            rows.append(_call_row(p["start"], name, counts))
        if names:
            rows.append(_call_row(p["start"], ALL_SERVICES, total))
    frame = pd.DataFrame(rows, columns=list(SERVICE_COLUMNS))
    for col in ("availability", "error_rate"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _call_row(start: float, service: str, counts: Mapping[str, int]) -> dict[str, Any]:
    calls = sum(counts.values())
    answered = counts["ok"] + counts["failed"]
    return {
        "time": to_time(start),
        "service": service,
        **counts,
        "calls": calls,
        "availability": counts["ok"] / calls if calls else None,
        "error_rate": counts["failed"] / answered if answered else None,
    }


def service_names(frame: pd.DataFrame) -> list[str]:
    """The services of :func:`service_calls_frame`, without the total."""
    if frame.empty:
        return []
    return sorted(str(s) for s in frame["service"].unique() if s != ALL_SERVICES)


def calls_summary(frame: pd.DataFrame, seconds: float, step_s: float, service: str = ALL_SERVICES) -> dict[str, Any]:
    """Availability and error rate of one service (or all) over the last ``seconds`` of the series."""
    rows = frame[frame["service"] == service] if not frame.empty else frame
    if rows.empty:
        return {"calls": 0, "availability": None, "error_rate": None}
    tail = rows.tail(max(1, math.ceil(seconds / step_s)))
    ok, failed, calls = (int(tail[c].sum()) for c in ("ok", "failed", "calls"))
    return {
        "calls": calls,
        "availability": ok / calls if calls else None,
        "error_rate": failed / (ok + failed) if ok + failed else None,
    }


def service_lines_figure(
    frame: pd.DataFrame,
    column: str,
    title: str,
    *,
    services: Sequence[str] | None = None,
    overall: bool = True,
) -> go.Figure:
    """``availability`` or ``error_rate`` of :func:`service_calls_frame` over time: one line per
    service (``services``: only these) and, with ``overall``, the total as a thicker dark line."""
    fig = go.Figure()
    names = list(services) if services is not None else service_names(frame)
    for i, name in enumerate(names):
        rows = frame[frame["service"] == name] if not frame.empty else frame
        fig.add_trace(go.Scatter(x=rows["time"] if not rows.empty else [], y=rows[column] if not rows.empty else [],
                                 name=name, mode="lines+markers", connectgaps=False, marker={"size": 4},
                                 line={"width": 1.5, "color": SERVICE_PALETTE[i % len(SERVICE_PALETTE)]}))  # fmt: skip
    if overall:
        rows = frame[frame["service"] == ALL_SERVICES] if not frame.empty else frame
        fig.add_trace(go.Scatter(x=rows["time"] if not rows.empty else [], y=rows[column] if not rows.empty else [],
                                 name=ALL_SERVICES, mode="lines", connectgaps=False,
                                 line={"width": 3, "color": "#263238"}))  # fmt: skip
    _small(fig, title)
    fig.update_layout(showlegend=len(fig.data) > 1, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


def service_history_figure(frame: pd.DataFrame, service: str, samples: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    """One service over the last hour: its error rate and availability from the rollups (``frame`` of
    :func:`service_calls_frame`), and its utilization as sampled while the page is open (``samples``
    with ``t`` and ``utilization``; the API keeps no history of it)."""
    rows = frame[frame["service"] == service] if not frame.empty else frame
    x = rows["time"] if not rows.empty else []
    fig = go.Figure()
    for column, label, color in (("error_rate", "error rate", LIGHTS["red"]),
                                 ("availability", "availability", LIGHTS["green"])):  # fmt: skip
        y = rows[column] if not rows.empty else []
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines+markers", connectgaps=False, marker={"size": 4},
                                 line={"width": 2, "color": color}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[to_time(h["t"]) for h in samples], y=[h.get("utilization") for h in samples],
                             name="utilization (sampled)", mode="lines", line={"dash": "dot", "color": "#1e88e5"}))  # fmt: skip
    _small(fig, "Error rate and availability, last hour")
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


# ============================================================================== services
def service_available(service: Mapping[str, Any]) -> bool:
    breaker = service.get("breaker") or {}
    is_open = breaker.get("state") == "OPEN" or breaker.get("forced") == "OPEN"
    return bool(service.get("healthy_instances")) and not is_open


def availability(services: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of services available (a healthy instance, the breaker not open); None without services."""
    if not services:
        return None
    return sum(1 for s in services if service_available(s)) / len(services)


def breaker_problems(services: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Breakers an operator should look at: open, half-open, or forced."""
    out = []
    for s in services:
        b = s.get("breaker") or {}
        if b.get("state") in ("OPEN", "HALF_OPEN") or b.get("forced") == "OPEN":
            state = "forced OPEN" if b.get("forced") == "OPEN" else b.get("state")
            out.append({"service": s["name"], "state": state, "trips": b.get("trips", 0),
                        "failure_rate": b.get("window_failure_rate", 0.0)})  # fmt: skip
    return out


def breaker_label(breaker: Mapping[str, Any]) -> tuple[str, str]:
    """(text, colour) of a breaker badge."""
    forced = breaker.get("forced")
    state = breaker.get("state", "?")
    if forced == "OPEN" or state == "OPEN":
        return ("forced OPEN" if forced == "OPEN" else "OPEN"), "red"
    if state == "HALF_OPEN":
        return "HALF-OPEN", "orange"
    return ("forced CLOSED" if forced == "CLOSED" else "CLOSED"), "green"


def utilization_figure(instances: Sequence[Mapping[str, Any]], target: float = TARGET_UTILIZATION) -> go.Figure:
    """Utilization per instance against the load balancer's target (red past it, grey if unhealthy)."""
    ids = [i["id"] for i in instances]
    values = [float(i.get("utilization") or 0.0) for i in instances]
    colors = [
        LIGHTS["grey"] if not i.get("healthy") else (LIGHTS["red"] if v > target else LIGHTS["green"])
        for i, v in zip(instances, values, strict=True)
    ]
    fig = go.Figure(go.Bar(x=ids, y=values, marker_color=colors, text=[f"{v:.0%}" for v in values]))
    fig.add_hline(y=target, line_dash="dash", line_color=LIGHTS["red"], annotation_text=f"{target:.0%} target")
    _small(fig, "Utilization (calls in flight / capacity)", height=220)
    fig.update_yaxes(tickformat=".0%", range=[0, max(1.0, *values, target) * 1.1])
    return fig


# ============================================================================== samples kept by a session
def append_sample(
    history: Sequence[Mapping[str, Any]], sample: Mapping[str, Any], *, keep_s: float = 3600, max_len: int = 1440
) -> list[dict[str, Any]]:
    """Add a timestamped sample (``t`` in epoch seconds), dropping those older than ``keep_s`` and a
    repeat of the same ``t``. For numbers the API has no history of (sampled while a page is open)."""
    out = [dict(h) for h in history if h["t"] >= sample["t"] - keep_s and h["t"] != sample["t"]]
    out.append(dict(sample))
    out.sort(key=lambda h: h["t"])
    return out[-max_len:]


def history_figure(
    history: Sequence[Mapping[str, Any]], fields: Mapping[str, str], title: str, *, percent: bool = False
) -> go.Figure:
    """Lines of sampled values: ``fields`` maps a sample key to its legend label."""
    fig = go.Figure()
    times = [to_time(h["t"]) for h in history]
    for key, label in fields.items():
        fig.add_trace(go.Scatter(x=times, y=[h.get(key) for h in history], name=label, mode="lines+markers"))
    _small(fig, title)
    fig.update_layout(showlegend=len(fields) > 1, legend={"orientation": "h", "y": -0.25})
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


# ============================================================================== workflow detail
def timeline_frame(detail: Mapping[str, Any], now: float) -> pd.DataFrame:
    """One row per forward attempt window and per compensation window of the workflow's steps."""
    rows = []
    for s in detail.get("steps") or []:
        if s.get("started_at") is not None:
            end = s.get("ended_at") or now
            rows.append({"step": s["step_id"], "phase": "forward", "state": s["status"], "attempt": s.get("attempt", 0),
                         "start": to_time(s["started_at"]), "end": to_time(max(end, s["started_at"] + 0.001))})  # fmt: skip
        comp = s.get("compensation") or {}
        if comp.get("started_at") is not None:
            end = comp.get("ended_at") or now
            state = "compensation failed" if comp.get("error") and not comp.get("running") else "compensation"
            rows.append({"step": s["step_id"], "phase": "compensation", "state": state,
                         "attempt": comp.get("attempt", 0), "start": to_time(comp["started_at"]),
                         "end": to_time(max(end, comp["started_at"] + 0.001))})  # fmt: skip
    return pd.DataFrame(rows, columns=["step", "phase", "state", "attempt", "start", "end"])


def step_timeline(detail: Mapping[str, Any], now: float) -> go.Figure:
    """Gantt chart of the steps (forward attempts, then compensations) in declared order."""
    frame = timeline_frame(detail, now)
    order = [s["step_id"] for s in detail.get("steps") or []]
    height = 90 + 36 * max(1, len(order))
    if frame.empty:
        fig = go.Figure()
        fig.add_annotation(text="no step has started yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _small(fig, "Step timeline", height=height)
    colors = {**STEP_COLORS, "compensation failed": LIGHTS["red"]}
    fig = px.timeline(
        frame,
        x_start="start",
        x_end="end",
        y="step",
        color="state",
        color_discrete_map=colors,
        hover_data={"phase": True, "attempt": True},
        category_orders={"step": order},
    )
    _small(fig, "Step timeline", height=height)
    fig.update_layout(showlegend=True, hovermode="closest", legend={"orientation": "h", "title": None,
                      "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"})  # fmt: skip
    return fig


def events_frame(events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "version": e["version"],
            "at": clock(e.get("at")),
            "type": e["type"],
            "step": (e.get("data") or {}).get("step_id") or "",
            "data": _compact(e.get("data") or {}),
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=["version", "at", "type", "step", "data"])


def _compact(data: Mapping[str, Any], limit: int = 200) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items() if k != "step_id")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def steps_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for s in detail.get("steps") or []:
        comp = s.get("compensation") or {}
        error = s.get("error") or comp.get("error") or {}
        rows.append(
            {
                "step": s["step_id"],
                "status": s["status"],
                "attempt": s.get("attempt", 0),
                "started": clock(s.get("started_at")),
                "seconds": None if s.get("execution_time") is None else round(float(s["execution_time"]), 4),
                "compensation": comp.get("type", ""),
                "error": (error.get("message") or error.get("type") or "") if isinstance(error, dict) else str(error),
            }
        )
    return pd.DataFrame(rows, columns=["step", "status", "attempt", "started", "seconds", "compensation", "error"])


def workflows_frame(items: Sequence[Mapping[str, Any]], now: float) -> pd.DataFrame:
    rows = [
        {
            "workflow_id": i["workflow_id"],
            "definition": i["workflow_type"],
            "status": i["status"],
            "attention": "⚠" if i.get("requires_attention") else "",
            "correlation_id": i.get("correlation_id", ""),
            "created": clock(i.get("created_at")),
            "updated": ago(i.get("updated_at"), now),
        }
        for i in items
    ]
    return pd.DataFrame(
        rows, columns=["workflow_id", "definition", "status", "attention", "correlation_id", "created", "updated"]
    )


def stuck(items: Iterable[Mapping[str, Any]], now: float, after_s: float) -> list[dict[str, Any]]:
    """Workflows in a moving state whose state has not changed for ``after_s`` seconds."""
    moving = {"CREATED", "RUNNING", "COMPENSATING"}
    return [dict(i) for i in items if i.get("status") in moving and now - float(i.get("updated_at") or now) >= after_s]


# ============================================================================== waveless
WAVELESS_FIELDS = ("batch_size", "rate", "queue_depth")


def waveless_points(decisions: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Batch size, rate and queue depth over time: the controller's decisions (each records them)
    merged with the status samples a page took."""
    rows = []
    for d in decisions:
        at = _number(d.get("at"))
        if at is None:
            continue
        rows.append({"t": at, **{f: _number(d.get(f)) for f in WAVELESS_FIELDS}, "source": "decision"})
    for s in samples:
        rows.append({"t": float(s["t"]), **{f: _number(s.get(f)) for f in WAVELESS_FIELDS}, "source": "sample"})
    frame = pd.DataFrame(rows, columns=["t", *WAVELESS_FIELDS, "source"])
    if frame.empty:
        frame["time"] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    frame = frame.sort_values("t").drop_duplicates(subset=["t"], keep="last").reset_index(drop=True)
    frame["time"] = pd.to_datetime((frame["t"] * 1e6).round().astype("int64"), unit="us", utc=True)
    return frame


def waveless_figure(frame: pd.DataFrame) -> go.Figure:
    """Three stacked panels sharing time: batch size, release rate limit, queue depth."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Batch size", "Rate limit (orders/s)", "Queue depth"))  # fmt: skip
    for row, (field, color) in enumerate(
        (("batch_size", "#1e88e5"), ("rate", "#2e7d32"), ("queue_depth", "#ef8f00")), start=1
    ):
        x = frame["time"] if not frame.empty else []
        y = frame[field] if not frame.empty else []
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line={"shape": "hv", "color": color}, name=field),
                      row=row, col=1)  # fmt: skip
    fig.update_layout(height=480, margin={"l": 8, "r": 8, "t": 32, "b": 8}, showlegend=False)
    fig.update_yaxes(rangemode="tozero")
    return fig


def decisions_frame(decisions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "at": clock(_number(d.get("at"))),
            "kind": d.get("kind", ""),
            "batch": _number(d.get("batch_size")),
            "rate": _number(d.get("rate")),
            "queue": _number(d.get("queue_depth")),
            "utilization": _number(d.get("utilization")),
            "reason": d.get("reason") or "",
            "by": d.get("by") or "",
        }
        for d in decisions
    ]
    return pd.DataFrame(rows, columns=["at", "kind", "batch", "rate", "queue", "utilization", "reason", "by"])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
