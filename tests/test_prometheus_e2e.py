"""End to end: the real Prometheus (Debian's 2.42 binary) on loopback, with the project's scrape config
and rules (a test copy: 1 s scrape/evaluation, `for:` shortened), scrapes the real `wes exporter` over
real workers and the simulated services. Payment at 100 % errors under a steady order-fulfillment-http
load must make Prometheus itself fire WesCircuitBreakerOpen for payment (and nothing for the other
services); every dashboard query must evaluate without error on that Prometheus."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from engine.persistence.embedded import free_port
from sim.launcher import set_chaos
from tests.integration.support import wait_ready
from tests.metrics_support import (
    HTTP_WORKFLOW,
    NO_PROMETHEUS,
    REPO,
    dashboard_queries,
    exporter_process,
    prometheus_binary,
    sim_engine,
    substitute_macros,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]

ALERT = "WesCircuitBreakerOpen"
SHORT_FOR = "2s"


def config_copy(tmp_path: Path, exporter_address: str) -> Path:
    """The project's prometheus.yml and rules, pointed at the test's exporter, with short timings."""
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"})
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for path in (REPO / "prometheus" / "rules").glob("*.rules.yml"):
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = SHORT_FOR
        (rules_dir / path.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    config["rule_files"] = [str(rules_dir / "*.rules.yml")]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["wes"]["static_configs"] = [{"targets": [exporter_address]}]
    config["scrape_configs"] = [jobs["wes"]]
    out = tmp_path / "prometheus.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


class Prometheus:
    def __init__(self, binary: str, config: Path, data: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=5)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def api(self, path: str, **params: str) -> dict:
        body = self.http.get(f"/api/v1/{path}", params=params).json()
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def prometheus_bin() -> str:
    binary = prometheus_binary()
    if binary is None:
        pytest.skip(NO_PROMETHEUS)
    return binary


def test_real_prometheus_fires_the_breaker_alert_on_payment_chaos(client, workers, tmp_path, prometheus_bin) -> None:
    with sim_engine(client) as cluster, exporter_process(client.settings, tmp_path) as exporter:
        pool = workers(2)
        wait_ready(client, pool)
        address = re.sub(r"^http://|/metrics$", "", exporter.url)
        prom = Prometheus(prometheus_bin, config_copy(tmp_path, address), tmp_path / "data")
        stop_load = threading.Event()
        try:
            prom.wait_ready()
            # the scrape works before anything happens, and nothing fires for a healthy engine
            deadline = time.monotonic() + 15
            while not prom.api("query", query='up{job="wes"} == 1')["result"]:
                assert time.monotonic() < deadline, prom.api("targets")
                time.sleep(0.2)
            assert prom.api("query", query='wes_circuit_breaker_state{service="payment", state="CLOSED"}')["result"]

            for inst in cluster.instances_of("payment"):
                set_chaos(inst.url, error_rate=1.0)

            def load() -> None:  # a steady trickle of orders, like `wes up --demo`
                while not stop_load.wait(0.2):
                    client.start(HTTP_WORKFLOW, {"order_id": f"e2e-{uuid.uuid4().hex[:8]}"})

            threading.Thread(target=load, name="e2e-load", daemon=True).start()

            states: list[str] = []
            deadline = time.monotonic() + 45
            firing = None
            while firing is None:
                alerts = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == ALERT]
                for a in alerts:
                    assert a["labels"]["service"] == "payment", a  # only the service in chaos
                    if not states or states[-1] != a["state"]:
                        states.append(a["state"])
                    if a["state"] == "firing":
                        firing = a
                if time.monotonic() > deadline:
                    raise AssertionError(f"{ALERT} did not fire; states seen {states}; breaker "
                                         f"{client.services.get_circuit_breaker_state('payment')}")  # fmt: skip
                time.sleep(0.25)
            assert "pending" in states or states[0] == "firing"
            assert firing["labels"]["severity"] == "warning"
            assert firing["annotations"]["summary"] == (
                "Circuit breaker of service payment has not closed for over 1 minute"
            )
            assert firing["annotations"]["runbook_url"] == "grafana/RUNBOOK.md#wescircuitbreakeropen"

            # the same Prometheus evaluates every dashboard query without error
            for where, expr in dashboard_queries():
                prom.api("query", query=substitute_macros(expr))  # asserts status == success
                assert where
            # and the recorded availability of payment collapsed
            avail = prom.api("query", query='wes_service_calls_total{service="payment", outcome="failed"}')
            assert float(avail["result"][0]["value"][1]) > 0
        finally:
            stop_load.set()
            prom.stop()
