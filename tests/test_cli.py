"""The `wes` command, run as a real subprocess against a real Redis and real worker processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from engine.client import EngineClient
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.settings import EngineSettings
from engine.worker.pool import WorkerPool

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "order_fulfillment.yaml"
WID = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.timeout(120)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("WES_")}
    env.update(extra)
    return env


def run_wes(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wes_cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_many(env: dict[str, str], *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Independent invocations in parallel (each pays ~1 s of interpreter and import start-up)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wes_cli", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess([*args], proc.returncode, out, err))
    return results


def assert_one_error_line(proc: subprocess.CompletedProcess[str], starts: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {starts}"), lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


class Engine:
    def __init__(self, url: str, prefix: str, home: Path):
        self.settings = EngineSettings(
            redis_url=url, key_prefix=prefix, lease_seconds=1.0, linger_seconds=2.0, tick_seconds=0.1
        )
        self.client = EngineClient(self.settings)
        self.env = clean_env(REDIS_URL=url, WES_KEY_PREFIX=prefix, WES_HOME=str(home))

    def wes(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_wes(self.env, *args, timeout=timeout)

    def wes_many(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        return run_many(self.env, *commands)

    def wes_json(self, *args: str, code: int = 0) -> Any:
        return parse_json(self.wes("--json", *args), code)


def parse_json(proc: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert proc.returncode == code, proc
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("cli-home")
    server = EmbeddedRedis(home, port=free_port())
    info = server.start()
    eng = Engine(info.url, f"cli{uuid.uuid4().hex[:8]}", home)
    pool = WorkerPool(eng.settings, concurrency=1, grace_seconds=10.0)
    pool.start()
    try:
        eng.client.apply_file(EXAMPLE)
        yield eng
    finally:
        pool.stop()
        server.stop()


@pytest.fixture(scope="module")
def attention_wid(engine: Engine) -> str:
    """Started early: its failing undo retries for a few seconds before it needs attention."""
    data = {"order_id": "t-attn", "fail_at": "pick", "fail_compensation": ["reserve_inventory"]}
    return engine.client.start("order-fulfillment", data)["workflow_id"]


@pytest.fixture(scope="module")
def completed(engine: Engine, attention_wid: str) -> tuple[str, str]:
    corr = f"corr-{uuid.uuid4().hex[:6]}"
    proc = engine.wes(
        "start", "order-fulfillment", "--input", '{"order_id":"t-ok"}', "--correlation-id", corr, "--wait"
    )
    assert proc.returncode == 0, proc
    wid = proc.stdout.splitlines()[0]
    assert WID.match(wid), proc.stdout
    assert "COMPLETED" in proc.stdout
    return wid, corr


@pytest.fixture(scope="module")
def compensated(engine: Engine) -> str:
    out = engine.wes_json(
        "start", "order-fulfillment", "--input", '{"order_id":"t-bad","fail_at":"charge"}', "--wait", code=3
    )
    assert out["created"] is True
    assert out["final"]["status"] == "COMPENSATED"
    return out["workflow_id"]


def test_definitions_apply_list_show(engine: Engine) -> None:
    prefix = ("--prefix", f"cd{uuid.uuid4().hex[:8]}")
    first = engine.wes(*prefix, "definitions", "apply", str(EXAMPLE))
    assert first.returncode == 0, first
    assert first.stdout.split() == ["order-fulfillment:1", "created"]
    again, listed, shown, missing = engine.wes_many(
        ("--json", *prefix, "definitions", "apply", "examples/order_fulfillment.yaml"),
        (*prefix, "definitions", "list"),
        (*prefix, "definitions", "show", "order-fulfillment"),
        (*prefix, "definitions", "apply", "no/such/file.yaml"),
    )
    assert parse_json(again) == [
        {"definition": "order-fulfillment:1", "name": "order-fulfillment", "version": 1, "created": False}
    ]
    assert listed.returncode == 0, listed
    assert re.search(r"^order-fulfillment\s+1\s+yes\s+EXACTLY_ONCE\s+6", listed.stdout, re.M), listed.stdout
    assert shown.returncode == 0, shown
    data = yaml.safe_load(shown.stdout)
    assert data["name"] == "order-fulfillment" and len(data["steps"]) == 6
    assert_one_error_line(missing, "no such file or directory")


def test_start_wait_completed(engine: Engine, completed: tuple[str, str]) -> None:
    wid, _ = completed
    assert engine.client.status(wid) == "COMPLETED"


def test_start_wait_compensated_exits_3(engine: Engine, compensated: str) -> None:
    snap = engine.client.get(compensated)
    assert snap["status"] == "COMPENSATED"
    assert [s["status"] for s in snap["steps"]][-1] == "FAILED"


def test_status_events_validate(engine: Engine, completed: tuple[str, str], compensated: str) -> None:
    wid, corr = completed
    status, status_json, events, events_json, valid = engine.wes_many(
        ("status", wid),
        ("--json", "status", compensated),
        ("events", wid),
        ("--json", "events", compensated),
        ("validate", wid),
    )
    assert status.returncode == 0, status
    assert re.search(r"^status\s+COMPLETED$", status.stdout, re.M)
    assert re.search(r"^definition\s+order-fulfillment:1$", status.stdout, re.M)
    assert re.search(rf"^correlation id\s+{corr}$", status.stdout, re.M)
    assert re.search(r"^charge\s+COMPLETED\s+1\s", status.stdout, re.M)
    snap = parse_json(status_json)
    assert snap["workflow_id"] == compensated and snap["status"] == "COMPENSATED"

    assert events.returncode == 0, events
    lines = events.stdout.splitlines()
    assert len(lines) == 15
    assert "v1 " in lines[0] and "WorkflowCreated" in lines[0]
    assert "WorkflowCompleted" in lines[-1]
    assert any("StepExecuted" in line and "step_id=charge" in line for line in lines)
    types = [e["type"] for e in parse_json(events_json)]
    assert types[0] == "WorkflowCreated" and types[-1] == "WorkflowCompensated"
    assert types.count("StepCompensated") == 5

    assert valid.returncode == 0, valid
    assert valid.stdout.startswith("consistent")


def test_events_follow_until_terminal(engine: Engine) -> None:
    wid = engine.client.start("order-fulfillment", {"order_id": "t-follow", "slow": {"pick": 1.5}})["workflow_id"]
    proc = engine.wes("events", "--follow", wid, timeout=30)
    assert proc.returncode == 0, proc
    lines = proc.stdout.splitlines()
    assert "WorkflowCreated" in lines[0] and "WorkflowCompleted" in lines[-1]
    assert len(lines) == 15


def test_list(engine: Engine, completed: tuple[str, str], compensated: str) -> None:
    wid, corr = completed
    by_corr, by_status, first, bad = engine.wes_many(
        ("--json", "list", "--correlation-id", corr),
        ("list", "--status", "compensated"),
        ("--json", "list", "--limit", "1"),
        ("list", "--status", "DONE"),
    )
    assert [s["workflow_id"] for s in parse_json(by_corr)["items"]] == [wid]
    assert by_status.returncode == 0, by_status
    header = by_status.stdout.splitlines()[0].split()
    assert header == ["ID", "DEFINITION", "STATUS", "CREATED", "UPDATED", "ATTENTION"]
    assert re.search(rf"^{compensated}\s+order-fulfillment:1\s+COMPENSATED\s", by_status.stdout, re.M)
    assert bad.returncode == 2
    assert "COMPENSATED" in bad.stderr and "Traceback" not in bad.stderr

    page = parse_json(first)
    assert len(page["items"]) == 1 and page["next_cursor"]
    second = engine.wes_json("list", "--limit", "1", "--cursor", page["next_cursor"])
    assert second["items"][0]["workflow_id"] != page["items"][0]["workflow_id"]

    newest = [s["workflow_id"] for s in engine.wes_json("list", "--limit", "1000")["items"]]
    assert len(newest) >= 3, newest
    oldest = engine.wes_json("list", "--oldest", "--limit", "2")
    assert [s["workflow_id"] for s in oldest["items"]] == newest[::-1][:2]
    more = engine.wes_json("list", "--oldest", "--limit", "2", "--cursor", oldest["next_cursor"])
    assert more["items"] and [s["workflow_id"] for s in more["items"]] == newest[::-1][2:4]


def test_user_errors_are_one_line(engine: Engine, completed: tuple[str, str]) -> None:
    pause, pause_json, bad_json, not_object, unknown = engine.wes_many(
        ("pause", completed[0]),
        ("--json", "pause", completed[0]),
        ("start", "order-fulfillment", "--input", "{order_id: 1"),
        ("start", "order-fulfillment", "--input", "[1, 2]", "--json"),
        ("status", "nope"),
    )
    assert_one_error_line(pause, "illegal transition COMPLETED -> PAUSED: ")
    assert pause.stdout == ""
    out = parse_json(pause_json, code=1)
    assert out["type"] == "IllegalTransition"
    assert out["error"].startswith("illegal transition COMPLETED -> PAUSED")
    assert_one_error_line(bad_json, "--input is not valid JSON: ")
    assert_one_error_line(not_object, "invalid input: --input must be a JSON object, got list")
    assert parse_json(not_object, code=1)["type"] == "InputValidationError"
    assert_one_error_line(unknown, "no workflow with id 'nope'")


def test_start_checks_strict(engine: Engine) -> None:
    """The CLI's start goes through the one start use case: STRICT on a server that does not fsync each
    write (this one: appendfsync everysec) is refused with the reason, and nothing is stored."""
    order = '{"order_id": "t-strict"}'
    proc = engine.wes(
        "start", "order-fulfillment", "--input", order, "--correlation-id", "t-strict", "--consistency", "STRICT"
    )
    assert_one_error_line(proc, "STRICT needs a Redis that fsyncs before each step")
    assert engine.client.list(correlation_id="t-strict").items == []
    relaxed = engine.wes("start", "order-fulfillment", "--input", order, "--correlation-id", "t-relaxed")
    assert relaxed.returncode == 0, relaxed
    assert len(engine.client.list(correlation_id="t-relaxed").items) == 1


def test_idempotency_key_returns_same_workflow(engine: Engine) -> None:
    args = ("start", "order-fulfillment", "--input", '{"order_id":"t-idem"}', "--idempotency-key", "idem-1")
    first = engine.wes_json(*args)
    second = engine.wes_json(*args)
    assert first["workflow_id"] == second["workflow_id"]
    assert (first["created"], second["created"]) == (True, False)


def test_pause_cancel_resume(engine: Engine) -> None:
    wid = engine.client.start("order-fulfillment", {"order_id": "t-pause", "slow": {"pick": 3}})["workflow_id"]
    engine.client.wait(wid, timeout=10, until=lambda s: s == "RUNNING")
    paused = engine.wes("pause", wid)
    assert paused.returncode == 0, paused
    assert paused.stdout.split() == [wid, "PAUSED"]
    cancelled = engine.wes_json("cancel", wid, "--reason", "changed my mind")
    assert cancelled["status"] == "COMPENSATING"
    assert_one_error_line(engine.wes("resume", wid), "illegal transition COMPENSAT")
    final = engine.client.wait(wid, timeout=30)
    assert final["status"] == "COMPENSATED"
    by = {e["type"]: e.get("by") for e in engine.client.events(wid)}
    assert by["WorkflowPaused"].startswith("cli:") and by["WorkflowCancelled"].startswith("cli:")


def test_attention_and_retry_compensation(engine: Engine, attention_wid: str) -> None:
    snap = engine.client.wait(attention_wid, timeout=30)
    assert snap["requires_attention"] and snap["failed_compensations"] == ["reserve_inventory"]
    listed = engine.wes_json("list", "--attention")
    assert attention_wid in [s["workflow_id"] for s in listed["items"]]
    proc = engine.wes("retry-compensation", attention_wid, "--step", "reserve_inventory")
    assert proc.returncode == 0, proc
    assert proc.stdout.split() == [attention_wid, "COMPENSATING"]


def test_keys_create_list_revoke_and_the_key_opens_the_api(engine: Engine, tmp_path: Path) -> None:
    from wes_cli.components import ApiComponent

    made = engine.wes_json("keys", "create", "operator", "--name", "night shift")
    assert made["role"] == "operator" and made["name"] == "night shift" and made["key"].startswith("wes_")
    listed = engine.wes_json("keys", "list")
    assert [k["key_id"] for k in listed if k["name"] == "night shift"] == [made["key_id"]]
    assert made["key"] not in json.dumps(listed)  # only hashes are stored

    api = ApiComponent(engine.settings, free_port(), log_file=tmp_path / "api.log")
    api.start()
    try:
        headers = {"Authorization": f"Bearer {made['key']}"}
        info = httpx.get(f"{api.url}/api/v1/info", headers=headers, timeout=5)
        assert info.status_code == 200, info.text
        assert engine.wes("keys", "revoke", made["key_id"]).returncode == 0

        def refused() -> bool:  # the API trusts a verified key for its auth cache (2 s), then refuses it
            return httpx.get(f"{api.url}/api/v1/info", headers=headers, timeout=5).status_code == 401

        wait_for(refused, 5, "the API to refuse the revoked key")
    finally:
        api.stop()
    assert made["key_id"] not in engine.wes("keys", "list").stdout
    assert_one_error_line(engine.wes("keys", "revoke", "nope"), "no API key with id 'nope'")
    env_key = clean_env(**{**engine.env, "WES_API_KEYS": "viewer:abcdefabcdefabcdef"})
    assert_one_error_line(run_wes(env_key, "keys", "revoke", "env-1"), "key env-1 comes from the env")


def test_unreachable_redis_is_one_error_line(tmp_path: Path) -> None:
    refused, no_server = run_many(
        clean_env(WES_HOME=str(tmp_path)),
        ("--redis-url", f"redis://127.0.0.1:{free_port()}/0", "list"),
        ("--json", "list"),
    )
    assert_one_error_line(refused, "Error ")
    assert_one_error_line(no_server, "no Redis server")
    assert parse_json(no_server, code=1)["type"] == "ConfigurationError"


def test_bench_smoke(engine: Engine) -> None:
    out = engine.wes_json("bench", "--workflows", "3", "--steps", "1", "--workers", "1", "--naive-workflows", "1")
    assert out["completed"] == 3 and out["server"] == "external"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(150)
def test_up_demo_then_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(WES_HOME=str(home))
    out_path = tmp_path / "up.out"
    api_port = free_port()
    with open(out_path, "w") as out:
        cmd = [sys.executable, "-m", "wes_cli", "up", "--workers", "1", "--redis-port", str(free_port()), "--demo"]
        dash_port = free_port()
        cmd += ["--api-port", str(api_port), "--metrics-port", str(free_port()), "--dashboard-port", str(dash_port)]
        up = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "running; Ctrl-C to stop" in out_path.read_text() or up.poll() is not None, 90, "wes up")
        banner = out_path.read_text()
        assert up.poll() is None, banner
        assert (home / "redis.json").exists()
        redis_pid = json.loads((home / "redis.json").read_text())["pid"]
        worker_pids = [int(p) for p in re.search(r"workers\s+1 started \(pids ([\d, ]+)\)", banner)[1].split(",")]
        assert "(embedded, pid" in banner and "AOF on" in banner
        assert "order-fulfillment:1 (created)" in banner
        assert re.search(r"^\s+[0-9a-f]{32}\s+COMPLETED\s+order-fulfillment: happy path$", banner, re.M), banner
        assert re.search(r"^\s+[0-9a-f]{32}\s+COMPENSATED\s+order-fulfillment: fail_at: charge$", banner, re.M)
        # ...and one through the simulated warehouse services, which --demo starts and registers.
        assert re.search(r"COMPLETED\s+order-fulfillment-http: through the simulated services$", banner, re.M)
        assert "order feed:" in banner
        # The API answers with the admin key printed once (only its hash is stored)...
        key = re.search(r"^admin key\s+([0-9a-zA-Z_-]+)\s+\(shown once", banner, re.M)[1]
        assert f"http://127.0.0.1:{api_port}/api/v1" in banner
        api = f"http://127.0.0.1:{api_port}/api/v1"
        assert httpx.get(f"{api}/workflows", timeout=5).status_code == 401
        listed = httpx.get(f"{api}/workflows", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert listed.status_code == 200, listed.text

        # ...the dashboard is served next to it...
        assert f"dashboard    http://127.0.0.1:{dash_port}" in banner
        assert httpx.get(f"http://127.0.0.1:{dash_port}/_stcore/health", timeout=5).status_code == 200

        # ...and the order feed's orders are released into sagas by the waveless controller.
        def released() -> int:
            out = run_wes(env, "--json", "waveless", "status")
            return int(json.loads(out.stdout).get("released_total") or 0) if out.returncode == 0 else 0

        wait_for(lambda: released() > 0, 30, "orders released by the waveless controller")
        assert "StepCompensated(reserve_inventory)" in banner

        applied = run_wes(env, "definitions", "apply", "examples/order_fulfillment.yaml")
        assert applied.returncode == 0 and "unchanged" in applied.stdout, applied
        started = run_wes(env, "start", "order-fulfillment", "--input", '{"order_id":"t1"}', "--wait")
        assert started.returncode == 0, started
        assert "COMPLETED" in started.stdout

        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = out_path.read_text()
    assert text.rstrip().endswith("stopped"), text
    assert "Traceback" not in text
    assert not pid_alive(redis_pid)
    assert not any(pid_alive(p) for p in worker_pids)
    assert not (home / "redis.json").exists()
