"""The embedded Redis server: real redis-server processes, one per test, under tmp_path."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.errors import ConfigurationError
from engine.persistence.embedded import DISCOVERY_FILE, EmbeddedRedis, ServerInfo, free_port, read_discovery


def client(info: ServerInfo) -> redis.Redis:
    return redis.Redis.from_url(info.url, protocol=2, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)


def recorded(home: Path) -> dict:
    return json.loads((home / DISCOVERY_FILE).read_text())


@pytest.fixture
def servers() -> Iterator[list[EmbeddedRedis]]:
    """Every EmbeddedRedis a test appends here is stopped afterwards, even if the test fails."""
    started: list[EmbeddedRedis] = []
    yield started
    for server in reversed(started):
        server.stop()


def embedded(servers: list[EmbeddedRedis], home: Path, **options) -> EmbeddedRedis:
    options.setdefault("port", free_port())
    server = EmbeddedRedis(home, **options)
    servers.append(server)
    return server


def test_start_serves_with_aof_on(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    info = embedded(servers, tmp_path).start()

    assert info.version.startswith("6.2")
    assert recorded(tmp_path) == {
        "url": info.url,
        "pid": info.pid,
        "port": info.port,
        "data_dir": info.data_dir,
        "version": info.version,
        "tcp_url": info.tcp_url,
    }
    # Local clients get the unix socket; TCP is there too, for other tools.
    assert info.url == f"unix://{info.data_dir}/redis.sock?db=0"
    assert info.tcp_url == f"redis://127.0.0.1:{info.port}/0"
    assert redis.Redis.from_url(info.tcp_url, socket_timeout=2).ping()
    assert read_discovery(tmp_path) == info
    r = client(info)
    assert r.ping()
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert r.config_get("save") == {"save": "3600 1 900 100"}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    r.set("k", "v")
    assert (Path(info.data_dir) / "appendonly.aof").stat().st_size > 0


def test_data_survives_a_restart(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    port = free_port()
    first = embedded(servers, tmp_path, port=port)
    client(first.start()).set("order:1", "picked")
    first.stop()

    # No RDB may carry it: the AOF replay alone must bring the key back.
    (tmp_path / "redis" / "dump.rdb").unlink(missing_ok=True)
    second = embedded(servers, tmp_path, port=port)
    assert client(second.start()).get("order:1") == "picked"


def test_read_discovery_forgets_dead_servers(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    server = embedded(servers, tmp_path)
    server.start()
    server.stop()
    assert read_discovery(tmp_path) is None
    assert not (tmp_path / DISCOVERY_FILE).exists()
    server.stop()  # idempotent

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = free_port()
    stale = ServerInfo(f"redis://127.0.0.1:{port}/0", dead.pid, port, str(tmp_path / "redis"), "6.2.14")
    (tmp_path / DISCOVERY_FILE).write_text(json.dumps(stale.__dict__))
    assert read_discovery(tmp_path) is None
    assert not (tmp_path / DISCOVERY_FILE).exists()


def test_second_start_reuses_the_running_server(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    first = embedded(servers, tmp_path)
    info = first.start()
    second = embedded(servers, tmp_path)

    assert second.start() == info
    assert first.owned and not second.owned
    second.stop()
    assert client(info).ping()
    assert read_discovery(tmp_path) == info

    first.stop()
    with pytest.raises(redis.ConnectionError):
        client(info).ping()
    assert read_discovery(tmp_path) is None


def test_taken_port_moves_to_a_free_one(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        info = embedded(servers, tmp_path, port=taken).start()

    assert info.port != taken
    assert info.tcp_url == f"redis://127.0.0.1:{info.port}/0"
    assert recorded(tmp_path)["port"] == info.port
    assert client(info).ping()


def test_fsync_always(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    info = embedded(servers, tmp_path, fsync="always").start()
    assert client(info).config_get("appendfsync") == {"appendfsync": "always"}


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    with pytest.raises(ConfigurationError, match="appendfsync"):
        embedded(servers, tmp_path, fsync="sometimes").start()
    assert not (tmp_path / DISCOVERY_FILE).exists()
