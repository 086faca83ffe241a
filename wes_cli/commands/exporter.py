"""`wes exporter`: serve the engine's Prometheus metrics on ``/metrics`` (and ``/healthz``).

One exporter per engine (per Redis and key prefix) covers every worker on every host: workers flush
their counters and histograms into Redis, and the exporter reads them there at each scrape (see
engine/metrics/). `wes up` runs one too (``--metrics-port``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import click

from engine.metrics import build_registry, render
from engine.persistence.errors import StoreError
from engine.persistence.stores import Stores, open_stores
from engine.settings import EngineSettings
from wes_cli.app import App, pass_app
from wes_cli.supervisor import Component, Supervisor, run_until_signalled

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def metrics_app(stores: Stores) -> Callable[[dict, Callable], Iterable[bytes]]:
    """WSGI app: ``/metrics`` (the exposition), ``/healthz`` (200 when Redis answers, else 503)."""
    registry = build_registry(stores)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path in ("/metrics", "/"):
            body, content_type = render(registry)
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/healthz":
            try:
                ok = stores.ping()
            except (StoreError, OSError):
                ok = False
            body = b"ok\n" if ok else b"redis unreachable\n"
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics\n"]

    return app


class MetricsServer:
    """The exporter's HTTP server, in a daemon thread."""

    def __init__(self, settings: EngineSettings, host: str, port: int, url: str | None = None):
        self.stores = open_stores(settings, url)
        self.host, self.port = host, port
        self.app = metrics_app(self.stores)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve; returns the /metrics URL. Raises OSError when the port is taken."""
        self._server = make_server(self.host, self.port, self.app, _ThreadingServer, _QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="wes-exporter", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ExporterComponent(Component):
    name = "exporter"

    def __init__(self, settings: EngineSettings, host: str, port: int, url: str | None = None):
        self.server = MetricsServer(settings, host, port, url=url)

    def start(self) -> dict[str, Any]:
        return {"url": self.server.start(), "healthz": self.server.url.replace("/metrics", "/healthz")}

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        self.server.stop()


@click.command()
@click.option("--metrics-host", "host", metavar="ADDR", help="Address to serve on [$WES_METRICS_HOST, 127.0.0.1].")
@click.option("--metrics-port", "port", type=click.IntRange(0, 65535), help="Port [$WES_METRICS_PORT, 9464].")
@pass_app
def exporter(app: App, host: str | None, port: int | None) -> None:
    """Serve the engine's Prometheus metrics on /metrics until Ctrl-C/SIGTERM.

    Run one per engine: it reads what every worker (on any host) flushed to Redis, plus live state
    (statuses, breakers, instances, queues, workers). Point Prometheus at it."""
    sup = Supervisor()
    settings = app.settings

    def boot() -> dict[str, Any]:
        app.client.ping()
        component = ExporterComponent(
            settings,
            host or settings.metrics_host,
            settings.metrics_port if port is None else port,
            url=app.client.url,
        )
        info = sup.start(component)
        if not app.json:
            click.echo(f"metrics      {info['url']}  (engine on {app.client.url}, prefix {settings.key_prefix})")
        return {"redis_url": app.client.url, "exporter": info}

    run_until_signalled(app, sup, boot)


def start_exporter(sup: Supervisor, settings: EngineSettings, url: str, port: int) -> dict[str, Any]:
    """`wes up`'s exporter; a taken port is a warning, not a failure of the whole stack."""
    try:
        return sup.start(ExporterComponent(settings, settings.metrics_host, port, url=url))
    except OSError as exc:
        click.echo(f"warning: metrics endpoint not started on port {port}: {exc.strerror or exc} "
                   "(choose another with --metrics-port)", err=True)  # fmt: skip
        return {"url": None, "error": str(exc)}
