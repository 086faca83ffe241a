"""The real `wes exporter` process over a running engine on the simulated services: a chaos knob shows
up on /metrics within one scrape, the exposition passes `promtool check metrics`, and the saga metrics
that worker processes recorded arrive through Redis."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest

from sim.launcher import set_chaos
from tests.integration.support import wait_for, wait_ready
from tests.metrics_support import HTTP_WORKFLOW, exporter_process, promtool, samples, sim_engine, value

pytestmark = pytest.mark.timeout(60)


def test_payment_chaos_shows_on_metrics_within_one_scrape(client, workers, tmp_path) -> None:
    with sim_engine(client) as cluster, exporter_process(client.settings, tmp_path) as exporter:
        pool = workers(2)
        wait_ready(client, pool)
        before = samples(exporter.scrape())
        assert value(before, "wes_circuit_breaker_state", service="payment", state="CLOSED") == 1
        assert value(before, "wes_service_calls_total", service="payment", outcome="failed") == 0
        assert value(before, "wes_steps_total", workflow_type=HTTP_WORKFLOW, step="charge", outcome="retried") == 0

        for inst in cluster.instances_of("payment"):
            set_chaos(inst.url, error_rate=1.0)
        ids = [client.start(HTTP_WORKFLOW, {"order_id": f"m-{uuid.uuid4().hex[:8]}"})["workflow_id"] for _ in range(8)]
        wait_for(lambda: client.services.get_circuit_breaker_state("payment")["trips"] >= 1, 30, "the payment breaker")
        # The breaker is read from Redis at scrape time: the very next scrape shows it.
        after = samples(exporter.scrape())
        assert value(after, "wes_circuit_breaker_state", service="payment", state="CLOSED") == 0
        assert (value(after, "wes_circuit_breaker_trips_total", service="payment") or 0) >= 1
        assert (value(after, "wes_service_calls_total", service="payment", outcome="failed") or 0) >= 4
        assert value(after, "wes_service_calls_total", service="inventory", outcome="failed") == 0

        for wid in ids:
            client.wait(wid, 40)

        def settled() -> dict | None:  # workers flush every stats_flush_seconds
            s = samples(exporter.scrape())
            finished = value(s, "wes_workflows_finished_total", workflow_type=HTTP_WORKFLOW, outcome="compensated")
            return s if finished == len(ids) else None

        s = wait_for(settled, 10, "the compensated sagas on /metrics")
        assert value(s, "wes_workflows_started_total", workflow_type=HTTP_WORKFLOW) == len(ids)
        assert (value(s, "wes_steps_total", workflow_type=HTTP_WORKFLOW, step="charge", outcome="retried") or 0) > 0
        assert value(s, "wes_steps_total", workflow_type=HTTP_WORKFLOW, step="charge", outcome="failed") == len(ids)
        assert value(s, "wes_compensations_started_total", workflow_type=HTTP_WORKFLOW) == len(ids)
        assert value(s, "wes_compensation_execution_seconds_count", workflow_type=HTTP_WORKFLOW, step="ship") == len(
            ids
        )
        assert value(s, "wes_service_instance_up", service="payment", service_instance="payment-1") == 1

        text = exporter.scrape()
        tool = promtool()
        if tool is not None:  # the exposition lint (naming conventions, units, _total)
            res = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
            assert res.returncode == 0, res.stdout + res.stderr

        assert httpx.get(f"{exporter.base}/healthz", timeout=5).text == "ok\n"
        assert httpx.get(f"{exporter.base}/nope", timeout=5).status_code == 404
