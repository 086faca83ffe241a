"""The hot path's asyncio door to Redis: many calls in flight on one connection, replies in order.

A worker keeps hundreds of sagas in flight, each waiting for its own commit. One connection carries all
of their calls: each is packed by hiredis and written at once (calls made in the same turn of the
event loop go out in one write), and a hiredis reader hands each reply to the future of the call that
sent it, in order. No pool, no lock, no thread: the round trips of many sagas overlap.

Scripts are called by SHA and loaded on the connection when the server does not know them (after a
restart, say); nothing of such a call ran, so it is simply sent again. A write is never re-sent after a
connection error: the reply may have been lost after the script ran. The error goes to every call in
flight; the sagas' leases expire and another attempt starts from what was stored.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


@dataclass(frozen=True)
class Address:
    """Where a connection goes, and how it identifies itself."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    """A unix socket, instead of host and port."""
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False

    @classmethod
    def of(cls, client: redis.Redis) -> Address:
        """The address the sync client's pool connects to (for Sentinel: the master it resolves now)."""
        pool = client.connection_pool
        kw = pool.connection_kwargs
        get_master = getattr(pool, "get_master_address", None)
        host, port = get_master() if get_master else (kw.get("host", "127.0.0.1"), kw.get("port", 6379))
        tls = issubclass(pool.connection_class, redis.SSLConnection)
        return cls(
            host=host,
            port=int(port),
            path=kw.get("path"),
            username=kw.get("username"),
            password=kw.get("password"),
            db=int(kw.get("db") or 0),
            tls=tls,
        )


class _Resp(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", errors="strict", replyError=ResponseError)
        self.loop = asyncio.get_running_loop()
        self.waiting: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}")
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(self.lost)


class AsyncRedis:
    """One pipelining connection, (re)opened on first use in the running loop."""

    def __init__(self, address: Callable[[], Address], connect_timeout: float = 5.0):
        self.address = address
        """Asked at each (re)connection: behind Sentinel, the master may have moved."""
        self.connect_timeout = connect_timeout
        self._proto: _Resp | None = None
        self._connecting: asyncio.Future | None = None
        self._outbox: list[bytes] = []
        self._flush_scheduled = False

    async def _connection(self) -> _Resp:
        proto = self._proto
        if proto is not None and proto.lost is None:
            if proto.loop is asyncio.get_running_loop():
                return proto
            # Opened on another event loop (a tool that runs asyncio.run more than once): start afresh.
            self.close()
            self._connecting = None
            self._flush_scheduled = False
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _open(self) -> _Resp:
        loop = asyncio.get_running_loop()
        a = self.address()
        if a.path:
            opening = loop.create_unix_connection(_Resp, a.path)
        else:
            context = ssl.create_default_context() if a.tls else None
            opening = loop.create_connection(_Resp, a.host, a.port, ssl=context)
        _, proto = await asyncio.wait_for(opening, self.connect_timeout)
        self._proto = proto
        self._outbox.clear()
        hello: list[tuple[Any, ...]] = []
        if a.password:
            hello.append(("AUTH", a.username, a.password) if a.username else ("AUTH", a.password))
        if a.db:
            hello.append(("SELECT", a.db))
        for reply in await asyncio.gather(*(self._send(proto, c) for c in hello)):
            if isinstance(reply, ResponseError):
                raise reply
        return proto

    def _send(self, proto: _Resp, command: tuple[Any, ...]) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        proto.waiting.append(fut)
        self._outbox.append(hiredis.pack_command(command))
        if not self._flush_scheduled:
            # Calls made in this turn of the loop leave together, in one write.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, proto)
        return fut

    def _flush(self, proto: _Resp) -> None:
        self._flush_scheduled = False
        data, self._outbox = b"".join(self._outbox), []
        if proto.transport is not None and proto.lost is None:
            proto.transport.write(data)

    async def execute(self, *command: Any) -> Any:
        """One command; an error reply is raised."""
        reply = await self._send(await self._connection(), command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def evalsha(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Call a registered script by SHA, loading it first if the server does not know it. An error
        reply of the script is returned, not raised (the caller maps it)."""
        proto = self._proto
        if proto is None or proto.lost is not None or proto.loop is not asyncio.get_running_loop():
            proto = await self._connection()
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        reply = await self._send(proto, command)
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            await self.execute("SCRIPT", "LOAD", script.script)
            reply = await self._send(await self._connection(), command)
        return reply

    def evalsha_soon(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future:
        """Send a script call without waiting for its reply (the caller adds a callback if it cares).
        On a fresh or lost connection, or when the server did not know the script, it goes through
        ``evalsha`` as a task instead."""
        proto = self._proto
        if proto is None or proto.lost is not None or proto.loop is not asyncio.get_running_loop():
            return asyncio.ensure_future(self.evalsha(script, keys, args))
        outer = proto.loop.create_future()
        sent = self._send(proto, ("EVALSHA", script.sha, len(keys), *keys, *args))

        def done(fut: asyncio.Future) -> None:
            if fut.cancelled():
                outer.cancel()
            elif fut.exception() is not None:
                outer.set_exception(fut.exception())  # type: ignore[arg-type]
            elif isinstance(fut.result(), ResponseError) and str(fut.result()).startswith("NOSCRIPT"):
                retry = asyncio.ensure_future(self.evalsha(script, keys, args))
                retry.add_done_callback(
                    lambda r: outer.set_exception(r.exception()) if r.exception() else outer.set_result(r.result())
                )
            else:
                outer.set_result(fut.result())

        sent.add_done_callback(done)
        return outer

    async def evalsha_checked(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``evalsha`` with an error reply raised (the hot path's single calls: no task per call)."""
        reply = await self.evalsha(script, keys, args)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def evalsha_many(self, calls: Sequence[tuple[Script, Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Several script calls sent together; their replies (errors raised) in order."""
        replies = await asyncio.gather(*(self.evalsha(s, k, a) for s, k, a in calls))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return list(replies)

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None and not proto.loop.is_closed():
            proto.transport.close()


def async_redis_for(client: redis.Redis) -> AsyncRedis:
    """The pipelining connection beside a sync client (one per client, made on first use)."""
    conn = getattr(client, "_wes_async_redis", None)
    if conn is None:
        conn = AsyncRedis(lambda: Address.of(client), connect_timeout=5.0)
        client._wes_async_redis = conn  # type: ignore[attr-defined]
    return conn
