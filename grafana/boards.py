"""The five provisioned dashboards, one function each; metric names and SLA buckets come from the engine."""

from __future__ import annotations

from panels import WT, Board, p99, quantile, target, thresholds

from engine.metrics import LATENCY_INDICATORS, SLA_TARGETS


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
    b.row("Our latency bars without a seed target")
    for ind in LATENCY_INDICATORS:
        label = f"p{round(ind.quantile * 100)}"
        share = (
            f'sum(rate({ind.metric}_bucket{{le="{ind.bar_le}"}}[$__range])) / sum(rate({ind.metric}_count[$__range]))'
        )
        b.stat(
            f"{ind.what} <= {ind.bar_seconds * 1000:g} ms (bar: {label})",
            [target(share, ind.sli, instant=True)],
            "percentunit",
            w=6,
            h=8,
            defaults={"decimals": 2, "thresholds": thresholds(("red", None), ("green", ind.quantile))},
            description=f"Share of claims within the bar over the dashboard range; {label} <= bar when it is "
            f">= {ind.quantile:.0%}.",
        )
        b.timeseries(
            f"{ind.what}: p50 / {label} / p99 vs bar",
            [target(quantile(0.5, ind.metric), "p50"), target(quantile(ind.quantile, ind.metric), label),
             target(p99(ind.metric), "p99"), target(f"vector({ind.bar_seconds})", "bar")],
            "s",
            w=18,
            description="From when a saga fell due (a fresh start: its creation; a retry or a timer: its due time; "
            "a dead worker's saga: its lease expiry) to a worker claiming it.",
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
