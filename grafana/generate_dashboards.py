"""Write the provisioned Grafana dashboards (grafana/dashboards/wes/*.json) from this description.

    .venv/bin/python grafana/generate_dashboards.py          # rewrite the JSON files
    .venv/bin/python grafana/generate_dashboards.py --check  # exit 1 if one is out of date (CI)

Built in Python so every panel gets the fixed datasource uid, a unique id and a gridPos inside the
24-column grid by construction; metric names and SLA buckets come from engine/metrics.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from engine.metrics import SLA_TARGETS

OUT = Path(__file__).resolve().parent / "dashboards" / "wes"
DS = {"type": "prometheus", "uid": "prometheus"}
WT = 'workflow_type=~"$workflow_type"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        out["instant"] = True
        out["range"] = False
    return out


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


class Board:
    """Lays panels out left to right, wrapping at 24 columns."""

    def __init__(self, uid: str, title: str, description: str, variables: bool = False):
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0
        self.variables = variables

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "gridPos": self._place(24, 1), "panels": []}
        )
        self.x, self.y, self.row_h = 0, self.y + 1, 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        unit: str = "short",
        w: int = 8,
        h: int = 8,
        description: str = "",
        options: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        for i, t in enumerate(targets):
            t["refId"] = chr(ord("A") + i)
        field_defaults: dict[str, Any] = {"unit": unit}
        field_defaults.update(defaults or {})
        self.panels.append(
            {
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "targets": targets,
                "fieldConfig": {"defaults": field_defaults, "overrides": []},
                "options": options or {},
            }
        )

    def timeseries(self, title: str, targets: list[dict[str, Any]], unit: str = "short", **kw: Any) -> None:
        self.panel("timeseries", title, targets, unit, **kw)

    def stat(self, title: str, targets: list[dict[str, Any]], unit: str = "short", **kw: Any) -> None:
        kw.setdefault("w", 4)
        kw.setdefault("h", 5)
        kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"})
        self.panel("stat", title, targets, unit, **kw)

    def states(self, title: str, targets: list[dict[str, Any]], mappings: list[dict[str, Any]], **kw: Any) -> None:
        kw.setdefault("w", 12)
        kw.setdefault("defaults", {})
        kw["defaults"]["mappings"] = mappings
        kw["defaults"].setdefault("color", {"mode": "thresholds"})
        self.panel("state-timeline", title, targets, "short", **kw)

    def to_json(self) -> dict[str, Any]:
        for i, p in enumerate(self.panels, 1):
            p["id"] = i
        templating: list[dict[str, Any]] = []
        if self.variables:
            query = "label_values(wes_workflows_started_total, workflow_type)"
            templating.append(
                {
                    "name": "workflow_type",
                    "label": "workflow type",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": query, "refId": "workflow_type"},
                    "definition": query,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                }
            )
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["wes"],
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "browser",
            "templating": {"list": templating},
            "annotations": {"list": []},
            "links": [{"title": "WES", "type": "dashboards", "tags": ["wes"], "asDropdown": True}],
            "panels": self.panels,
        }


def p99(metric: str, by: str = "", matcher: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    sel = f"{{{matcher}}}" if matcher else ""
    return f"histogram_quantile(0.99, sum by ({group}) (rate({metric}_bucket{sel}[$__rate_interval])))"


def quantile(q: float, metric: str, by: str = "", matcher: str = "") -> str:
    return p99(metric, by, matcher).replace("histogram_quantile(0.99,", f"histogram_quantile({q},")


# ====================================================================== dashboards
def sla() -> Board:
    b = Board(
        "wes-sla",
        "WES · SLA overview",
        "Compliance with the seed's SLA targets (share of events within the target, a histogram bucket) and "
        "with our tighter bars (p99), error budget burn per SLI.",
    )
    b.row("Compliance with the seed's SLA targets over the dashboard range (objective 99.9 %)")
    for t in SLA_TARGETS:
        expr = f'sum(rate({t.metric}_bucket{{le="{t.le}"}}[$__range])) / sum(rate({t.metric}_count[$__range]))'
        b.stat(
            f"{t.what} < {t.seconds:g} s",
            [target(expr, t.sli, instant=True)],
            "percentunit",
            w=5 if t is not SLA_TARGETS[-1] else 4,
            defaults={"decimals": 3, "thresholds": thresholds(("red", None), ("orange", 0.99), ("green", t.objective))},
        )
    b.row("Our bars: share within the p99 bar over the dashboard range (p99 <= bar when >= 99 %)")
    for t in SLA_TARGETS:
        what = f"{t.bar_metric.removeprefix('wes_').removesuffix('_seconds').replace('_', ' ')}"
        expr = (
            f'sum(rate({t.bar_metric}_bucket{{le="{t.bar_le}"}}[$__range])) / sum(rate({t.bar_metric}_count[$__range]))'
        )
        b.stat(
            f"{what} <= {t.bar_seconds * 1000:g} ms",
            [target(expr, t.sli, instant=True)],
            "percentunit",
            w=5 if t is not SLA_TARGETS[-1] else 4,
            defaults={"decimals": 2, "thresholds": thresholds(("red", None), ("orange", 0.95), ("green", 0.99))},
        )
    b.row("Error budget")
    b.timeseries(
        "SLI error ratio, 1 h window",
        [target("wes:sli_error:ratio_rate1h", "{{sli}}")],
        "percentunit",
        w=12,
        description="Share of events worse than the SLA target (for saga_success: sagas compensated).",
    )
    b.timeseries(
        "Burn rate, 1 h window (1 = spending the 30-day budget exactly)",
        [target("wes:sli_error:ratio_rate1h / on(sli) (1 - wes:slo_objective:ratio)", "{{sli}}")],
        "short",
        w=12,
        defaults={"thresholds": thresholds(("green", None), ("orange", 6), ("red", 14.4))},
    )
    b.timeseries(
        "Compliance, 5 m window",
        [target("wes:sla_compliance:ratio_rate5m", "seed {{sli}}"),
         target("wes:sla_bar_compliance:ratio_rate5m", "bar {{sli}}")],
        "percentunit",
        w=12,
    )  # fmt: skip
    b.panel(
        "table",
        "SLA alerts",
        [target('ALERTS{alertname=~"WesSLO.*"}', "{{alertname}} {{sli}}", instant=True)],
        w=12,
        options={"showHeader": True},
    )
    b.row("Latency against the bars (p99)")
    for t in SLA_TARGETS:
        if t.bar_metric != t.metric:
            b.timeseries(
                f"{t.what}: p99 vs seed target",
                [target(p99(t.metric), "p99"), target(f"vector({t.seconds})", "seed target")],
                "s",
            )
        b.timeseries(
            f"{t.bar_metric.removeprefix('wes_').removesuffix('_seconds').replace('_', ' ')}: p50 / p99 vs bar",
            [target(quantile(0.5, t.bar_metric), "p50"), target(p99(t.bar_metric), "p99"),
             target(f"vector({t.bar_seconds})", "bar")],
            "s",
        )  # fmt: skip
    return b


def throughput() -> Board:
    b = Board(
        "wes-throughput",
        "WES · Throughput and outcomes",
        "Workflow starts and outcomes, saga success rate, durations, steps and retries, queues and workers.",
        variables=True,
    )
    b.row("Workflows")
    b.timeseries(
        "Starts per second",
        [target(f"sum by (workflow_type) (rate(wes_workflows_started_total{{{WT}}}[$__rate_interval]))",
                "{{workflow_type}}")],
        "reqps",
    )  # fmt: skip
    b.timeseries(
        "Completions per second by outcome",
        [target(f"sum by (outcome) (rate(wes_workflows_finished_total{{{WT}}}[$__rate_interval]))", "{{outcome}}")],
        "reqps",
    )
    b.timeseries(
        "Saga success rate (completed / finished)",
        [target(f"wes:saga_success:ratio_rate5m{{{WT}}}", "{{workflow_type}}")],
        "percentunit",
        defaults={"min": 0, "max": 1},
    )
    b.timeseries(
        "Live workflows by status",
        [target('wes_workflows{status=~"CREATED|RUNNING|PAUSED|COMPENSATING"}', "{{status}}")],
    )
    b.timeseries(
        "Workflow duration p50 / p99",
        [target(quantile(0.5, "wes_workflow_duration_seconds", "outcome", WT), "p50 {{outcome}}"),
         target(p99("wes_workflow_duration_seconds", "outcome", WT), "p99 {{outcome}}")],
        "s",
    )  # fmt: skip
    b.timeseries(
        "Timeouts and stuck workflows",
        [target(f"sum(increase(wes_workflows_timed_out_total{{{WT}}}[$__rate_interval]))", "timed out"),
         target("sum by (status) (wes_workflows_past_deadline)", "past deadline: {{status}}")],
    )  # fmt: skip
    b.row("Steps")
    b.timeseries(
        "Step attempts per second by outcome",
        [target(f"sum by (outcome) (rate(wes_steps_total{{{WT}}}[$__rate_interval]))", "{{outcome}}")],
        "reqps",
    )
    b.timeseries(
        "Step retry rate by step",
        [target(f"wes:step_retry:ratio_rate5m{{{WT}}}", "{{workflow_type}}/{{step}}")],
        "percentunit",
    )
    b.timeseries(
        "Step execution p99 by step",
        [target(p99("wes_step_execution_seconds", "workflow_type, step", WT), "{{workflow_type}}/{{step}}")],
        "s",
    )
    b.row("Queues and workers")
    b.timeseries("Queue depth", [target("wes_queue_depth", "{{queue}}")])
    b.timeseries(
        "Oldest runnable saga waiting for a worker", [target("wes_runnable_oldest_age_seconds", "waiting")], "s"
    )
    b.timeseries(
        "Workers",
        [
            target("wes_workers_alive", "alive"),
            target("wes_worker_heartbeat_age_seconds", "freshest heartbeat age (s)"),
        ],
    )
    return b


def compensations() -> Board:
    b = Board(
        "wes-compensations",
        "WES · Compensations",
        "Backward recovery: how often sagas compensate, how compensation actions end, how long they take, "
        "and the workflows waiting for an operator.",
        variables=True,
    )
    b.stat("Requires attention", [target("wes_workflows_requires_attention", "workflows")],
           defaults={"thresholds": thresholds(("green", None), ("red", 1))})  # fmt: skip
    b.stat(
        "Compensating now",
        [target('wes_workflows{status="COMPENSATING"}', "workflows")],
        defaults={"thresholds": thresholds(("green", None), ("orange", 10))},
    )
    b.stat(
        "Failed compensations (range)",
        [target(f'sum(increase(wes_compensation_actions_total{{outcome="failed", {WT}}}[$__range]))', "failed",
                instant=True)],
        defaults={"thresholds": thresholds(("green", None), ("red", 1))},
    )  # fmt: skip
    b.stat(
        "Compensation timeouts (range)",
        [target(f"sum(increase(wes_compensation_timeouts_total{{{WT}}}[$__range]))", "timeouts", instant=True)],
        defaults={"thresholds": thresholds(("green", None), ("red", 1))},
    )
    b.stat(
        "Sagas compensated (range)",
        [target(f"sum(increase(wes_compensations_started_total{{{WT}}}[$__range]))", "started", instant=True)],
        w=8,
        defaults={"thresholds": thresholds(("blue", None))},
    )
    b.timeseries(
        "Compensation frequency: sagas compensating per second",
        [target(f"sum by (workflow_type) (rate(wes_compensations_started_total{{{WT}}}[$__rate_interval]))",
                "{{workflow_type}}")],
        "reqps",
    )  # fmt: skip
    b.timeseries(
        "Share of sagas that compensate",
        [target(f"wes:compensation:ratio_rate5m{{{WT}}}", "{{workflow_type}}")],
        "percentunit",
    )
    b.timeseries(
        "Compensation actions per second by outcome",
        [target(f"sum by (outcome) (rate(wes_compensation_actions_total{{{WT}}}[$__rate_interval]))", "{{outcome}}")],
        "reqps",
    )
    b.timeseries(
        "Whole compensation duration p50 / p99",
        [target(quantile(0.5, "wes_compensation_duration_seconds", "", WT), "p50"),
         target(p99("wes_compensation_duration_seconds", "", WT), "p99")],
        "s",
    )  # fmt: skip
    b.timeseries(
        "Compensation action p99 by step (SLA 60 s)",
        [target(p99("wes_compensation_execution_seconds", "workflow_type, step", WT), "{{workflow_type}}/{{step}}")],
        "s",
    )
    b.timeseries(
        "Engine overhead per compensation p99 (bar 2 ms)",
        [target(p99("wes_compensation_overhead_seconds", "workflow_type", WT), "{{workflow_type}}"),
         target("vector(0.002)", "bar")],
        "s",
    )  # fmt: skip
    b.timeseries("Requires attention backlog", [target("wes_workflows_requires_attention", "workflows")], w=24)
    return b


BREAKER_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "CLOSED", "color": "green"}, "1": {"text": "HALF_OPEN", "color": "orange"},
                                  "2": {"text": "OPEN", "color": "red"}}},
]  # fmt: skip
UP_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}
]


def services() -> Board:
    b = Board(
        "wes-services",
        "WES · Circuit breakers and service health",
        "Circuit breakers shared by every worker, call availability, instance health and utilization "
        "against the 85 % load-balancing target.",
    )
    b.states(
        "Circuit breaker state",
        [target('max by (service) (wes_circuit_breaker_state{state="OPEN"}) * 2 '
                '+ max by (service) (wes_circuit_breaker_state{state="HALF_OPEN"})', "{{service}}")],
        BREAKER_MAPPINGS,
    )  # fmt: skip
    b.timeseries(
        "Breaker trips",
        [target("sum by (service) (increase(wes_circuit_breaker_trips_total[$__rate_interval]))", "{{service}}")],
        w=6,
    )
    b.panel(
        "table",
        "Forced breakers",
        [target("wes_circuit_breaker_forced == 1", "{{service}} {{mode}}", instant=True)],
        w=6,
    )
    b.timeseries(
        "Service availability (successful calls)",
        [target("wes:service_availability:ratio_rate5m", "{{service}}")],
        "percentunit",
        w=12,
        defaults={"min": 0, "max": 1},
    )
    b.timeseries(
        "Calls per second by outcome",
        [target("sum by (service, outcome) (rate(wes_service_calls_total[$__rate_interval]))",
                "{{service}} {{outcome}}")],
        "reqps",
        w=12,
    )  # fmt: skip
    b.states("Instance health", [target("wes_service_instance_up", "{{service_instance}}")], UP_MAPPINGS)
    b.timeseries(
        "Instances up per service",
        [target("wes:service_instances_up:ratio", "{{service}}")],
        "percentunit",
        w=12,
    )
    b.timeseries(
        "Instance utilization vs target",
        [target("wes_service_instance_utilization_ratio", "{{service_instance}}"),
         target("max(wes_service_target_utilization_ratio)", "target")],
        "percentunit",
        w=12,
    )  # fmt: skip
    b.timeseries(
        "Calls in flight / capacity",
        [target("sum by (service) (wes_service_instance_in_flight)", "{{service}} in flight"),
         target("sum by (service) (wes_service_instance_capacity)", "{{service}} capacity")],
        w=12,
    )  # fmt: skip
    b.timeseries(
        "Health check latency",
        [target("wes_service_health_check_latency_seconds", "{{service_instance}}")],
        "s",
        w=24,
    )
    return b


def waveless() -> Board:
    b = Board(
        "wes-waveless",
        "WES · Waveless flow",
        "Continuous order release: intake queue, the controller's batch size and rate, utilization against "
        "the target, and what held releases back.",
    )
    b.stat("Intake queue", [target('wes_queue_depth{queue="intake"}', "orders")],
           defaults={"thresholds": thresholds(("green", None), ("orange", 100))})  # fmt: skip
    b.stat(
        "Batch size", [target("wes_waveless_batch_size", "orders")], defaults={"thresholds": thresholds(("blue", None))}
    )
    b.stat(
        "Release rate",
        [target("wes_waveless_release_rate_per_second", "orders/s")],
        "reqps",
        defaults={"thresholds": thresholds(("blue", None))},
    )
    b.stat(
        "Utilization",
        [target("wes_waveless_utilization_ratio", "utilization")],
        "percentunit",
        defaults={"thresholds": thresholds(("green", None), ("orange", 0.85), ("red", 1.0))},
    )
    b.stat(
        "Mode",
        [target("wes_waveless_mode == 1", "{{mode}}", instant=True)],
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "name", "colorMode": "none"},
    )
    b.stat(
        "Since last decision",
        [target("time() - wes_waveless_last_decision_timestamp_seconds", "age")],
        "s",
        defaults={"thresholds": thresholds(("green", None), ("orange", 30))},
    )
    b.timeseries(
        "Batch size and release rate",
        [target("wes_waveless_batch_size", "batch size"), target("wes_waveless_release_rate_per_second", "rate /s")],
        w=12,
    )
    b.timeseries(
        "Orders per second through the intake",
        [target("sum by (outcome) (rate(wes_waveless_orders_total[$__rate_interval]))", "{{outcome}}")],
        "reqps",
        w=12,
    )
    b.timeseries(
        "Intake queue depth",
        [target('wes_queue_depth{queue="intake"}', "waiting")],
        w=12,
    )
    b.timeseries(
        "Utilization vs target",
        [
            target("wes_waveless_utilization_ratio", "measured"),
            target("wes_waveless_target_utilization_ratio", "target"),
        ],
        "percentunit",
        w=12,
    )
    b.states(
        "What held releases back",
        [target("wes_waveless_limit == 1", "{{limit}}")],
        [{"type": "value", "options": {"1": {"text": "held", "color": "orange"}}}],
        w=24,
    )
    return b


BOARDS = (sla, throughput, compensations, services, waveless)


def generate() -> dict[str, str]:
    out = {}
    for build in BOARDS:
        board = build()
        out[f"{board.uid}.json"] = json.dumps(board.to_json(), indent=2, sort_keys=False) + "\n"
    return out


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"out of date: {', '.join(stale + extra)}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
