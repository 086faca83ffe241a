"""Every PromQL expression of the dashboards and the rules refers only to metrics (and labels) that the
running engine exports, taken from a real /metrics scrape of `wes exporter` over real workers and the
simulated services, or to recording rules and Prometheus's own series."""

from __future__ import annotations

import pytest

from tests.integration.support import wait_for, wait_ready
from tests.metrics_support import (
    REPO,
    check_references,
    dashboard_queries,
    exporter_process,
    rule_groups,
    samples,
    sim_engine,
    value,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def exposition(redis_url, tmp_path_factory) -> str:
    from engine.client import EngineClient
    from engine.worker.pool import WorkerPool
    from tests.conftest import fast_settings

    settings = fast_settings(redis_url)
    client = EngineClient(settings)
    client.apply_file(REPO / "examples" / "order_fulfillment.yaml")
    pool = WorkerPool(settings, concurrency=1, grace_seconds=10.0)
    with (
        sim_engine(client, {"payment": 1}, definition=False),
        exporter_process(settings, tmp_path_factory.mktemp("exp")) as exporter,
    ):
        pool.start()
        try:
            wait_ready(client, pool)
            ids = [
                client.start("order-fulfillment", {"order_id": "g-1"})["workflow_id"],
                client.start("order-fulfillment", {"order_id": "g-2", "fail_at": "charge"})["workflow_id"],
            ]
            for wid in ids:
                client.wait(wid, 30)

            def ready() -> str | None:
                text = exporter.scrape()
                s = samples(text)
                done = value(
                    s, "wes_workflows_finished_total", workflow_type="order-fulfillment", outcome="compensated"
                )
                checked = s.get("wes_service_health_check_latency_seconds")
                return text if done == 1 and checked else None

            return wait_for(ready, 20, "a scrape with the sagas and a health check")
        finally:
            pool.stop()


def test_exposition_has_every_family_the_issue_asks_for(exposition) -> None:
    names = set(samples(exposition))
    for name in (
        "wes_workflows_started_total", "wes_workflows_finished_total", "wes_workflow_duration_seconds_bucket",
        "wes_compensations_started_total", "wes_compensation_duration_seconds_bucket", "wes_steps_total",
        "wes_step_execution_seconds_bucket", "wes_circuit_breaker_state", "wes_circuit_breaker_trips_total",
        "wes_service_instance_up", "wes_service_instance_utilization_ratio", "wes_service_calls_total",
        "wes_queue_depth", "wes_waveless_batch_size", "wes_waveless_release_rate_per_second",
        "wes_workflow_start_seconds_bucket", "wes_compensation_execution_seconds_bucket",
        "wes_state_persistence_seconds_bucket", "wes_event_publish_seconds_bucket",
        "wes_workflows_requires_attention", "wes_workflows_past_deadline", "wes_workers_alive",
        "wes_worker_heartbeat_age_seconds",
    ):  # fmt: skip
        assert name in names, name


def test_dashboards_reference_only_exported_metrics(exposition) -> None:
    queries = dashboard_queries()
    assert len(queries) > 50
    assert check_references(exposition, queries) == []


def test_rules_reference_only_exported_metrics(exposition) -> None:
    queries = [(where, rule["expr"]) for where, rule in rule_groups()]
    assert len(queries) > 90
    assert check_references(exposition, queries) == []


def test_the_checker_catches_a_typo(exposition) -> None:
    problems = check_references(
        exposition,
        [
            ("typo", "rate(wes_step_execution_second_count[5m])"),
            ("label", 'wes_steps_total{stepp="x"}'),
            ("grouping", "sum by (workflow_id) (wes_steps_total)"),
        ],
    )
    assert len(problems) == 3, problems
