"""docker-compose.yml without a Docker engine: the compose-spec JSON schema (vendored in check-jsonschema,
no network) plus what a schema cannot see: healthchecks behind every service_healthy dependency, bind
mounts and the build context exist, pinned images, a scalable worker, Prometheus scraping a real
service, and every `wes` command parses with the real CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from wes_cli.main import cli

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
REQUIRED = {"redis", "api", "worker", "dashboard", "sim", "prometheus", "grafana", "exporter"}
ENTRY_POINTS = {"api": REPO / "api" / "main.py", "dashboard": REPO / "dashboard" / "app.py"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_spec_schema() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    res = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.unit
def test_every_service_of_the_stack_is_there(compose) -> None:
    assert set(compose["services"]) >= REQUIRED
    assert "version" not in compose  # obsolete in the compose spec


@pytest.mark.unit
def test_service_healthy_dependencies_have_healthchecks(compose) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{name} waits for {dep}'s health"
            if cond.get("condition") == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is one-shot"
    for name in ("redis", "prometheus", "grafana", "exporter", "worker", "sim", "api", "dashboard"):
        assert services[name].get("healthcheck", {}).get("test"), name


@pytest.mark.unit
def test_redis_keeps_an_aof_and_never_evicts(compose) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])


@pytest.mark.unit
def test_mounted_paths_and_build_context_exist(compose) -> None:
    volumes = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            context = REPO / (build["context"] if isinstance(build, dict) else build)
            assert context.is_dir(), name
            assert (
                context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            ).is_file()
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in volumes, f"{name}: named volume {source} not declared"
        for config in svc.get("configs") or []:
            assert config["source"] in compose["configs"], name


@pytest.mark.unit
def test_images_are_pinned_and_the_worker_scales(compose) -> None:
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        if "build" not in svc:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), f"{name}: {image}"
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker and "ports" not in worker
    assert worker["stop_grace_period"] == "60s"


@pytest.mark.unit
def test_services_whose_code_is_not_written_yet_are_behind_a_profile(compose) -> None:
    for name, entry in ENTRY_POINTS.items():
        if not entry.exists():
            assert compose["services"][name].get("profiles"), f"{name}: {entry} missing, so it must be opt-in"


@pytest.mark.unit
def test_prometheus_and_grafana_mounts_match_their_config(compose) -> None:
    prom = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    for target in targets:
        host = target.rsplit(":", 1)[0]
        assert host in compose["services"] or host == "localhost", target
    exporter = compose["services"]["exporter"]["command"]
    assert exporter[exporter.index("--metrics-port") + 1] == "9464"
    assert "exporter:9464" in targets
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in mounts
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]
    grafana = compose["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "grafana" / "dashboards" / Path(home).relative_to("/var/lib/grafana/dashboards")).is_file()


def _parse_wes(args: list[str]) -> None:
    """Resolve the command and parse its options exactly as `wes` would, without running it."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="wes")
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"wes {' '.join(args)}: no subcommand"
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, f"wes has no command {name!r}"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    command.make_context(command.name, rest, parent=ctx.parent)


@pytest.mark.unit
def test_every_wes_command_in_the_stack_parses(compose) -> None:
    seen = 0
    for svc in compose["services"].values():
        command = svc.get("command")
        if not command:
            continue
        lines = [command] if isinstance(command, list) and command[0] == "wes" else []
        if isinstance(command, list) and command[:2] == ["sh", "-c"]:
            lines = [part.split() for part in command[2].split("&&")]
        for argv in lines:
            if argv and argv[0] == "wes":
                _parse_wes(argv[1:])
                seen += 1
    assert seen >= 4
