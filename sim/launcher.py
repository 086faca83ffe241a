"""Start, stop, kill and restart simulated service instances as real processes (for tests and demos).

>>> with SimCluster(redis_url, {"inventory": 2, "payment": 1}) as cluster:
...     registry = cluster.services_config()      # the engine's service registry format
...     set_chaos(cluster.instances[0].url, error_rate=0.5)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from sim.services import SERVICES

__all__ = [
    "SERVICES",
    "SimCluster",
    "SimError",
    "SimInstance",
    "effects",
    "reset",
    "reset_chaos",
    "set_chaos",
    "set_stock",
    "stats",
]

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
HTTP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
"""The directory holding the ``sim`` package, put on the children's PYTHONPATH."""


class SimError(RuntimeError):
    """A sim server refused a request (``status`` and the server's ``message``) or did not start."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class SimInstance:
    service: str
    instance_id: str
    port: int
    url: str


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SimCluster:
    """Instances of the simulated services, one process each, sharing their state in Redis.

    `services` maps a service name to its number of instances (default: all six, one each). Instance
    ids are ``<service>-<n>`` (n from 1). With `base_port` the instances take consecutive ports from
    it, else free ports. Output of the servers goes to `log_file` (appended) or is kept in temporary
    files and shown when an instance fails to start.
    """

    def __init__(
        self,
        redis_url: str,
        services: dict[str, int] | None = None,
        base_port: int | None = None,
        prefix: str = "sim",
        log_file: Path | None = None,
    ):
        services = {name: 1 for name in SERVICES} if services is None else dict(services)
        unknown = sorted(set(services) - set(SERVICES))
        if unknown:
            raise ValueError(f"unknown service(s) {', '.join(unknown)} (known: {', '.join(SERVICES)})")
        bad = sorted(name for name, n in services.items() if not isinstance(n, int) or n < 1)
        if bad:
            raise ValueError(f"instance counts must be integers >= 1: {', '.join(bad)}")
        self.redis_url = redis_url
        self.prefix = prefix
        self.base_port = base_port
        self.log_file = Path(log_file) if log_file else None
        self._counts = services
        self._instances: dict[str, SimInstance] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, IO[bytes]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> list[SimInstance]:
        """Start every instance and wait until each answers ``/health``; the instances."""
        if self._procs:
            raise SimError("cluster already started")
        deadline = time.monotonic() + timeout
        offset = 0
        try:
            for service, count in self._counts.items():
                for n in range(1, count + 1):
                    port = self.base_port + offset if self.base_port is not None else free_port()
                    offset += 1
                    inst = SimInstance(service, f"{service}-{n}", port, f"http://{HOST}:{port}")
                    self._instances[inst.instance_id] = inst
                    self._spawn(inst)
            for inst in list(self._instances.values()):
                for attempt in range(1, PORT_ATTEMPTS + 1):
                    try:
                        self._wait_ready(inst, deadline)
                        break
                    except SimError:
                        # A free port can be taken by someone else before the child binds it: try another.
                        if self.base_port is not None or self.alive(inst.instance_id) or attempt == PORT_ATTEMPTS:
                            raise
                    inst.port = free_port()
                    inst.url = f"http://{HOST}:{inst.port}"
                    self._spawn(inst)
        except BaseException:
            self.stop()
            raise
        return self.instances

    def stop(self) -> None:
        """SIGTERM every instance, wait, SIGKILL stragglers. Idempotent."""
        procs = list(self._procs.items())
        for _, proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._procs.clear()
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def kill(self, instance_id: str) -> None:
        """SIGKILL one instance (it stays in :attr:`instances`; :meth:`restart` brings it back)."""
        self._instance(instance_id)
        proc = self._procs.get(instance_id)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, instance_id: str, timeout: float = 10.0) -> None:
        """Start a killed or stopped instance again on the same port (stopping it first if it runs)."""
        inst = self._instance(instance_id)
        proc = self._procs.get(instance_id)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + timeout
        # The port was ours; after a kill it may linger briefly (the server binds with SO_REUSEADDR).
        self._spawn(inst)
        self._wait_ready(inst, deadline)

    def alive(self, instance_id: str) -> bool:
        proc = self._procs.get(instance_id)
        return proc is not None and proc.poll() is None

    def pid(self, instance_id: str) -> int | None:
        proc = self._procs.get(instance_id)
        return proc.pid if proc is not None else None

    @property
    def instances(self) -> list[SimInstance]:
        return list(self._instances.values())

    def instances_of(self, service: str) -> list[SimInstance]:
        return [i for i in self._instances.values() if i.service == service]

    def url(self, instance_id: str) -> str:
        return self._instance(instance_id).url

    def services_config(self) -> dict[str, Any]:
        """The engine's service registry: ``{"services": {name: {"instances": [...], "operations": {...}}}}``."""
        config: dict[str, Any] = {}
        for service in self._counts:
            forward, undo = SERVICES[service]
            config[service] = {
                "instances": [{"id": i.instance_id, "url": i.url} for i in self.instances_of(service)],
                "operations": {forward: f"/{forward}", undo: f"/{undo}"},
            }
        return {"services": config}

    def __enter__(self) -> SimCluster:
        if not self._procs:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------------

    def _instance(self, instance_id: str) -> SimInstance:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise KeyError(f"no instance {instance_id!r} (instances: {', '.join(self._instances)})") from None

    def _log_for(self, instance_id: str) -> IO[bytes]:
        log = self._logs.get(instance_id)
        if log is None or log.closed:
            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                log = open(self.log_file, "ab")  # noqa: SIM115 - kept open for the child's lifetime
            else:
                log = tempfile.TemporaryFile(prefix=f"sim-{instance_id}-")  # noqa: SIM115
            self._logs[instance_id] = log
        return log

    def _spawn(self, inst: SimInstance) -> None:
        env = dict(os.environ)
        env["REDIS_URL"] = self.redis_url
        env["SIM_PREFIX"] = self.prefix
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        log = self._log_for(inst.instance_id)
        command = [
            sys.executable,
            "-m",
            "sim.server",
            "--service",
            inst.service,
            "--instance-id",
            inst.instance_id,
            "--port",
            str(inst.port),
            "--host",
            HOST,
            "--parent-pid",
            str(os.getpid()),
        ]
        self._procs[inst.instance_id] = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_ready(self, inst: SimInstance, deadline: float) -> None:
        proc = self._procs[inst.instance_id]
        while True:
            if proc.poll() is not None:
                raise SimError(
                    f"{inst.instance_id} exited with status {proc.returncode} before answering /health on port "
                    f"{inst.port}:\n{self._log_tail(inst.instance_id)}"
                )
            try:
                if _http().get(f"{inst.url}/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise SimError(
                    f"{inst.instance_id} did not answer /health on port {inst.port} in time:\n"
                    f"{self._log_tail(inst.instance_id)}"
                )
            time.sleep(0.05)

    def _log_tail(self, instance_id: str, lines: int = 20) -> str:
        try:
            if self.log_file is not None:
                text = self.log_file.read_bytes()
            else:
                log = self._logs[instance_id]
                log.flush()
                log.seek(0)
                text = log.read()
        except (OSError, KeyError, ValueError):
            return "(no log)"
        return "\n".join(text.decode(errors="replace").splitlines()[-lines:]) or "(empty log)"


# -- HTTP helpers ----------------------------------------------------------------------------------


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One client for the helpers (building an httpx client costs tens of ms: its TLS context)."""
    global _client
    with _client_lock:
        if _client is None or _client.is_closed:
            _client = httpx.Client(timeout=HTTP_TIMEOUT_S)
        return _client


def _request(method: str, url: str, json: Any = None) -> Any:
    response = _http().request(method, url, json=json)
    if response.is_success:
        return response.json()
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    raise SimError(f"{method} {url}: {response.status_code}: {message}", status=response.status_code)


def set_chaos(url: str, **knobs: Any) -> dict:
    """Set chaos knobs of the instance at `url` (partial update); the knobs now in force.
    Raises :class:`SimError` with the server's message (422 for invalid knobs)."""
    return _request("POST", f"{url}/_chaos", json=knobs)


def reset_chaos(url: str) -> None:
    _request("POST", f"{url}/_chaos/reset")


def effects(url: str) -> dict:
    """``{"service": ..., "effects": {"<op>|<key>": n}, "totals": {"<op>": n}}`` (shared by all instances)."""
    return _request("GET", f"{url}/_sim/effects")


def stats(url: str) -> dict:
    """That instance's call counts, injected errors and in-flight requests, per operation."""
    return _request("GET", f"{url}/_sim/stats")


def reset(url: str) -> dict:
    """Clear the service's effects, idempotency records and stock (all instances share them)."""
    return _request("POST", f"{url}/_sim/reset")


def set_stock(url: str, sku: str, quantity: int) -> dict:
    return _request("POST", f"{url}/_sim/stock", json={"sku": sku, "quantity": quantity})
