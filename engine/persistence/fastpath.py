"""Hot-path script calls over a connection held by the calling thread.

redis-py's pooled call path costs about seven system calls per command here (pool checkout, a
stale-data poll, health bookkeeping); on this kind of VM that is most of a round trip's CPU. A
connection owned by one thread needs only a send and a receive. Scripts are called by SHA and loaded
on that connection when the server does not know them (after a restart, for instance).

Writes are never re-sent after a connection error: the reply may have been lost after the script ran.
The error goes up; the saga's lease expires and another attempt starts from what was stored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

try:  # hiredis packs a command in C; redis-py's own packer walks every argument in Python first
    from hiredis import pack_command
except ImportError:  # pragma: no cover - hiredis is a declared dependency
    pack_command = None


class ScriptRunner:
    def __init__(self, client: redis.Redis):
        self.pool = client.connection_pool
        self._local = threading.local()

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.pool.make_connection()
            self._local.conn = conn
        return conn

    def _drop(self, attr: str = "conn") -> None:
        conn = getattr(self._local, attr, None)
        if conn is not None:
            conn.disconnect()
            setattr(self._local, attr, None)

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.run_many([(script, keys, args)])[0]

    def run_many(
        self, calls: Sequence[tuple[Script, Sequence[Any], Sequence[Any]]], raise_errors: bool = True
    ) -> list[Any]:
        """Send every call, then read every reply: one round trip for the batch. With
        ``raise_errors=False`` a call's error reply is returned in its place."""
        conn = self._connection()
        try:
            replies = self._round_trip(conn, calls)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:
                # Nothing ran for those calls: load the scripts and send just them again.
                for script in {calls[i][0].sha: calls[i][0] for i in missing}.values():
                    conn.send_command("SCRIPT", "LOAD", script.script)
                    conn.read_response()
                again = self._round_trip(conn, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop()
            raise
        if raise_errors:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    def _round_trip(self, conn, calls) -> list[Any]:
        self._send(conn, calls)
        return [self._read(conn) for _ in calls]

    @staticmethod
    def _send(conn, calls) -> None:
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]
        if pack_command is not None:
            conn.send_packed_command([pack_command(c) for c in commands], check_health=False)
        else:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)

    @staticmethod
    def _read(conn) -> Any:
        try:
            return conn.read_response()
        except redis.ResponseError as exc:
            return exc


def runner_for(client: redis.Redis) -> ScriptRunner:
    """One runner (so one held connection per thread) per client."""
    runner = getattr(client, "_wes_script_runner", None)
    if runner is None:
        runner = ScriptRunner(client)
        client._wes_script_runner = runner  # type: ignore[attr-defined]
    return runner
