"""The worker's HTTP/1.1 client: keep-alive connections per instance, responses parsed by httptools.

Every HTTP step is one POST with a JSON body. A general-purpose client spends most of a worker's CPU on
such a call (measured in ``wes bench --http``: aiohttp's request machinery cost more than the rest of
the step); this one writes the request in one system call and hands the bytes to httptools (the C
parser uvicorn uses), on connections kept per (scheme, host, port) and reused while the server keeps
them alive. A cancelled call (its attempt stopped) closes its connection, so the request is aborted and
no late response is read as another's. A call that fails on a reused connection before any byte of the
response arrived (the server had closed it while idle) is sent once more on a fresh connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

MAX_IDLE_PER_HOST = 256
"""Idle keep-alive connections kept per instance (the bulkhead bounds how many are busy)."""


class HttpError(Exception):
    """The request could not be completed: no connection, the connection dropped, a malformed response."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[HttpResponse] | None = None
        self.chunks: list[bytes] = []
        self.received = False
        self.closed = False
        self.keep_alive = False

    # ------------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection closed by the server: {exc or 'end of stream'}"))

    # ------------------------------------------------------------------ httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # only known while the message is current
        waiter, self.waiter = self.waiter, None
        body, self.chunks = b"".join(self.chunks), []
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpResponse(self.parser.get_status_code(), body))

    # ------------------------------------------------------------------ use
    def send(self, request: bytes) -> asyncio.Future[HttpResponse]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = False
        assert self.transport is not None
        self.transport.write(request)
        return self.waiter

    @property
    def reusable(self) -> bool:
        return not self.closed and self.waiter is None and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, str, int]
    host_header: bytes
    path: str
    tls: bool


class HttpClient:
    def __init__(self, connect_timeout: float = 5.0):
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        """POST ``body`` (with ``headers``) and read the whole response. Cancelling it aborts the request."""
        target = self._target(url)
        head = [f"POST {target.path} HTTP/1.1\r\n".encode(), b"Host: ", target.host_header, b"\r\n"]
        for name, value in headers.items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(f"Content-Length: {len(body)}\r\n\r\n".encode())
        request = b"".join(head) + body
        for reused in (True, False):
            conn = self._take_idle(target) if reused else None
            if conn is None:
                conn = await self._connect(target)
                reused = False
            try:
                response = await conn.send(request)
            except HttpError:
                conn.close()
                if reused and not conn.received:
                    continue  # the server had dropped the idle connection: nothing of it was read
                raise
            except BaseException:  # cancelled: the response may still come, and must not be read as another's
                conn.close()
                raise
            if conn.reusable and len(self._idle[target.key]) < MAX_IDLE_PER_HOST:
                self._idle[target.key].append(conn)
            else:
                conn.close()
            return response
        raise AssertionError("unreachable")

    def _target(self, url: str) -> _Target:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise HttpError(f"not an http(s) URL: {url!r}")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            found = _Target((parts.scheme, parts.hostname, port), parts.netloc.encode(), path, tls)
            self._targets[url] = found
        return found

    def _take_idle(self, target: _Target) -> _Connection | None:
        idle = self._idle[target.key]
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        _, host, port = target.key
        context = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            context = self._tls
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port, ssl=context), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"cannot connect to {host}:{port}: {type(exc).__name__}: {exc}") from exc
        return conn

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
