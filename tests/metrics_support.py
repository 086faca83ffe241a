"""Helpers of the metrics tests: the real `wes exporter` process, a chaos-ready engine on the simulated
services, and the PromQL reference checker (every metric and label a rule or dashboard uses exists).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engine.client import EngineClient
from engine.persistence.embedded import free_port
from engine.settings import EngineSettings
from engine.worker.process import settings_env
from sim.launcher import SimCluster

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
WES = Path(sys.executable).parent / "wes"
HTTP_WORKFLOW = "order-fulfillment-http"
PROMETHEUS_BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
TARGET_LABELS = {"job", "instance", "__name__"}
GRAFANA_MACROS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${__range}": "1h",
}


def promtool() -> str | None:
    return shutil.which("promtool")


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    return found or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


NO_PROMETHEUS = (
    "Debian's `prometheus` package (promtool, prometheus 2.42) is not installed: run-tests installs it with "
    "apt-get where apt and root are available"
)


# ====================================================================== exporter process
@dataclass
class Exporter:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def base(self) -> str:
        return self.url.removesuffix("/metrics")

    def scrape(self) -> str:
        response = httpx.get(self.url, timeout=10)
        response.raise_for_status()
        return response.text


@contextmanager
def exporter_process(settings: EngineSettings, log_dir: Path) -> Iterator[Exporter]:
    """`wes exporter` as its own process, on a free loopback port, until the block ends."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), "WES_METRICS_PORT": str(port), "WES_METRICS_HOST": "127.0.0.1"}
    log = log_dir / f"exporter-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(WES), "exporter"], env=env, stdout=out, stderr=subprocess.STDOUT)
    exporter = Exporter(proc, f"http://127.0.0.1:{port}/metrics", log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"wes exporter exited {proc.returncode}: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{exporter.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"wes exporter did not answer: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield exporter
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(found: dict[str, list], name: str, **labels: str) -> float | None:
    hits = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return hits[0] if len(hits) == 1 else None


# ====================================================================== chaos-ready engine
@contextmanager
def sim_engine(
    client: EngineClient, services: dict[str, int] | None = None, definition: bool = True
) -> Iterator[SimCluster]:
    """The simulated services as real processes, registered as the engine's endpoints, with the
    order-fulfillment-http definition applied (all six services needed)."""
    with SimCluster(client.settings.redis_url or "", services, prefix=f"sim{uuid.uuid4().hex[:8]}") as cluster:
        config = cluster.services_config()
        for endpoint in config["services"].values():
            # the example's breaker, opened for 2 s instead of 10 s so retries after a trip come quickly
            endpoint["breaker"] = {"window": 20, "min_calls": 10, "failure_rate": 0.5, "open_for": "2s"}
        client.services.apply(config)
        if definition:
            client.apply_file(REPO / "examples" / "services" / "order_fulfillment_http.yaml")
        yield cluster


# ====================================================================== PromQL references
@dataclass
class Reference:
    where: str
    expr: str
    metrics: set[str] = field(default_factory=set)
    matcher_labels: dict[str, set[str]] = field(default_factory=dict)
    grouping_labels: set[str] = field(default_factory=set)


def substitute_macros(expr: str) -> str:
    for macro, literal in GRAFANA_MACROS.items():
        expr = expr.replace(macro, literal)
    expr = re.sub(r"\$\{(\w+)(:\w+)?\}", ".*", expr)
    return re.sub(r"\$(\w+)", ".*", expr)


def parse_reference(where: str, expr: str) -> Reference:
    ref = Reference(where, expr)
    tree = promql_parser.parse(substitute_macros(expr))

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            labels = {m.name for m in node.matchers.matchers}
            if not name:
                name = next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            if name:
                ref.metrics.add(name)
                ref.matcher_labels.setdefault(name, set()).update(labels - {"__name__"})
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            ref.grouping_labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                ref.grouping_labels.update(matching.labels)
            ref.grouping_labels.update(node.modifier.group_labels or [])
        return True

    promql_parser.walk(tree, visit)
    return ref


def rule_groups() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((f"{path.name}:{rule.get('alert') or rule.get('record')}", rule))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS_DIR.rglob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{path.name}:{panel['title']}", t["expr"]))
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text or "")
            if m:
                out.append((f"{path.name}:${var['name']}", f"{m.group(1)}{{{m.group(2)}!=''}}"))
    return out


def recorded_labels() -> dict[str, set[str]]:
    """Labels each recording rule's series may carry: its static labels and its groupings."""
    out: dict[str, set[str]] = {}
    for _, rule in rule_groups():
        if "record" in rule:
            ref = parse_reference(rule["record"], rule["expr"])
            out.setdefault(rule["record"], set()).update(set(rule.get("labels", {})) | ref.grouping_labels)
    return out


def check_references(exposition: str, references: list[tuple[str, str]]) -> list[str]:
    """Problems: metrics neither exported, recorded nor built in; labels no such series carries."""
    found = samples(exposition)
    exported: dict[str, set[str]] = {}
    for name, rows in found.items():
        for s in rows:
            exported.setdefault(name, set()).update(s.labels)
    recorded = recorded_labels()
    problems = []
    for where, expr in references:
        try:
            ref = parse_reference(where, expr)
        except Exception as exc:  # promql_parser raises its own error types
            problems.append(f"{where}: does not parse ({exc}): {expr}")
            continue
        known_labels: set[str] = set(TARGET_LABELS) | {"le", "alertname", "alertstate", "severity"}
        for metric in ref.metrics:
            if metric in exported:
                labels = exported[metric] | TARGET_LABELS
            elif metric in recorded:
                labels = recorded[metric] | TARGET_LABELS
            elif metric in PROMETHEUS_BUILTIN:
                labels = None
            else:
                problems.append(f"{where}: metric {metric} is not exported, recorded or built in")
                continue
            if labels is not None:
                unknown = ref.matcher_labels.get(metric, set()) - labels
                if unknown:
                    problems.append(f"{where}: {metric} has no label(s) {sorted(unknown)}")
                known_labels |= labels
            else:
                known_labels |= {"sli", "service", "workflow_type", "queue", "status"}
        unknown_groups = ref.grouping_labels - known_labels
        if unknown_groups:
            problems.append(f"{where}: groups by label(s) {sorted(unknown_groups)} that no selected series carries")
    return problems
