"""The worker's HTTP/1.1 client against a real local TCP server: keep-alive reuse, chunked bodies, a
server that drops idle connections, cancellation, refusal."""

from __future__ import annotations

import asyncio

import pytest

from engine.integration.http_client import HttpClient, HttpError
from engine.persistence.embedded import free_port


class Server:
    """A tiny HTTP server: answers each request on a connection with what ``reply`` says."""

    def __init__(self, reply):
        self.reply = reply
        self.connections = 0
        self.disconnects = 0
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                )
                body = await reader.readexactly(length)
                out = await self.reply(head, body)
                if out is None:  # drop the connection
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.disconnects += 1
            writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_sends_the_headers():
    async def go():
        seen = []

        async def reply(head, body):
            seen.append((head, body))
            return ok(b'{"n": %d}' % len(seen))

        async with Server(reply) as server:
            client = HttpClient()
            url = f"http://127.0.0.1:{server.port}/charge?x=1"
            first = await client.post(url, b'{"a": 1}', {"Idempotency-Key": "k1", "Content-Type": "application/json"})
            second = await client.post(url, b"{}", {"Idempotency-Key": "k2"})
            client.close()
            return server.connections, first, second, seen

    connections, first, second, seen = run(go())
    assert connections == 1
    assert (first.status, first.body, second.body) == (200, b'{"n": 1}', b'{"n": 2}')
    head, body = seen[0]
    assert head.startswith(b"POST /charge?x=1 HTTP/1.1\r\n") and b"Idempotency-Key: k1\r\n" in head
    assert body == b'{"a": 1}'


def test_a_chunked_response_is_read_whole():
    async def go():
        async def reply(head, body):
            return b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

        async with Server(reply) as server:
            client = HttpClient()
            response = await client.post(f"http://127.0.0.1:{server.port}/x", b"{}", {})
            client.close()
            return response

    response = run(go())
    assert (response.status, response.body) == (503, b"hello world")


def test_an_idle_connection_the_server_dropped_is_replaced_without_failing_the_call():
    async def go():
        calls = 0

        async def reply(head, body):
            nonlocal calls
            calls += 1
            return ok(b"first") if calls == 1 else ok(b"again")

        async with Server(reply) as server:
            client = HttpClient()
            url = f"http://127.0.0.1:{server.port}/x"
            await client.post(url, b"{}", {})
            for conn in client._idle[("http", "127.0.0.1", server.port)]:  # the server restarts its side
                conn.transport.abort()
            response = await client.post(url, b"{}", {})
            client.close()
            return response, server.connections

    response, connections = run(go())
    assert response.body == b"again" and connections == 2


def test_a_cancelled_call_closes_its_connection_so_its_late_response_is_never_read():
    async def go():
        calls = 0

        async def reply(head, body):
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(0.3)  # the first answer comes late
                return ok(b"late")
            return ok(b"fresh")

        async with Server(reply) as server:
            client = HttpClient()
            url = f"http://127.0.0.1:{server.port}/x"
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.post(url, b"{}", {})
            response = await client.post(url, b"{}", {})
            await asyncio.sleep(0.4)
            client.close()
            return response, server.connections

    response, connections = run(go())
    assert response.body == b"fresh" and connections == 2


def test_a_refused_connection_is_an_http_error():
    async def go():
        client = HttpClient(connect_timeout=1.0)
        with pytest.raises(HttpError, match="cannot connect"):
            await client.post(f"http://127.0.0.1:{free_port()}/x", b"{}", {})

    run(go())
