"""Services right now (``GET /services``): availability, breaker badges, instance utilization."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from dashboard.charts.style import LIGHTS, small

TARGET_UTILIZATION = 0.85


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
    small(fig, "Utilization (calls in flight / capacity)", height=220)
    fig.update_yaxes(tickformat=".0%", range=[0, max(1.0, *values, target) * 1.1])
    return fig
