"""Grafana and Prometheus files, statically: dashboards load and are well formed, provisioning points at
the fixed datasource uid, generated files are up to date, every alert has its annotations and runbook
section, and promtool accepts the configuration, the rules and their unit tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.metrics_support import DASHBOARDS_DIR, NO_PROMETHEUS, REPO, promtool, rule_groups

pytestmark = pytest.mark.timeout(60)

DASHBOARDS = sorted(DASHBOARDS_DIR.rglob("*.json"))
RUNBOOK = REPO / "grafana" / "RUNBOOK.md"
REQUIRED_ALERTS = {
    "WesSLOErrorBudgetFastBurn",
    "WesSLOErrorBudgetSlowBurn",
    "WesCircuitBreakerOpen",
    "WesCompensationFailures",
    "WesRequiresAttentionBacklog",
    "WesWorkflowsStuckPastDeadline",
    "WesNoWorkerHeartbeat",
    "WesQueueBacklogGrowing",
}


@pytest.mark.unit
def test_dashboards_are_well_formed() -> None:
    assert len(DASHBOARDS) >= 5
    uids, titles = set(), set()
    for path in DASHBOARDS:
        text = path.read_text()
        board = json.loads(text)
        assert "__inputs" not in board and "${DS_" not in text, path.name
        assert board["uid"] not in uids and len(board["uid"]) <= 40, path.name
        assert board["title"] not in titles, path.name
        uids.add(board["uid"])
        titles.add(board["title"])
        assert board.get("id") is None and board["schemaVersion"] >= 36
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["expr"].strip() and t["datasource"]["uid"] == "prometheus", panel["title"]
                assert not re.search(r'le="\d+"', t["expr"]), f"integer le in {panel['title']}"


@pytest.mark.unit
def test_dashboards_cover_the_issue() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    for word in ("SLA", "Throughput", "Compensations", "Circuit breakers", "Waveless"):
        assert any(word in t for t in titles), word
    sla = json.loads((DASHBOARDS_DIR / "wes" / "wes-sla.json").read_text())
    exprs = " ".join(t["expr"] for p in sla["panels"] for t in p.get("targets", []))
    for le in ('le="1.0"', 'le="30.0"', 'le="60.0"', 'le="0.1"', 'le="0.05"'):
        assert le in exprs, le


@pytest.mark.unit
def test_provisioning_uses_the_fixed_datasource_uid() -> None:
    ds = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["uid"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((REPO / "grafana/provisioning/dashboards/wes.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["foldersFromFilesStructure"] is True
    assert "folder" not in providers[0] and "folderUid" not in providers[0]


@pytest.mark.parametrize("script", ["grafana/generate_dashboards.py", "prometheus/generate_slo_rules.py"])
def test_generated_files_are_up_to_date(script: str) -> None:
    res = subprocess.run([sys.executable, str(REPO / script), "--check"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr


@pytest.mark.unit
def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    alerts = {}
    for where, rule in rule_groups():
        if "alert" not in rule:
            continue
        alerts[rule["alert"]] = rule
        ann = rule.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), where
        url = ann.get("runbook_url", "")
        assert url.startswith("grafana/RUNBOOK.md#"), where
        assert url.split("#", 1)[1] in anchors, f"{where}: no section for {url}"
        assert rule.get("labels", {}).get("severity") in ("page", "warning", "ticket"), where
    assert set(alerts) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(alerts)


@pytest.mark.unit
def test_every_alert_has_a_promtool_unit_test() -> None:
    tested = set()
    for path in (REPO / "prometheus" / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                if t.get("exp_alerts"):
                    tested.add(t["alertname"])
    alerts = {rule["alert"] for _, rule in rule_groups() if "alert" in rule}
    assert alerts <= tested, f"alerts never seen firing in a unit test: {sorted(alerts - tested)}"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    tool = promtool()
    if tool is None:
        pytest.skip(NO_PROMETHEUS)
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_promtool_check_config_and_rules() -> None:
    res = _promtool("check", "config", "--syntax-only", "prometheus/prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    rules = sorted(str(p.relative_to(REPO)) for p in (REPO / "prometheus" / "rules").glob("*.rules.yml"))
    res = _promtool("check", "rules", *rules)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_test_rules() -> None:
    tests = sorted(str(p.relative_to(REPO)) for p in (REPO / "prometheus" / "tests").glob("*.test.yml"))
    res = _promtool("test", "rules", *tests)
    assert res.returncode == 0, res.stdout + res.stderr
