"""Whether this Redis can give STRICT sagas their durable fsync before each step, and the fsync itself."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from engine.errors import ConsistencyUnavailable, EngineError
from engine.persistence.connection import server_version

RECHECK_S = 10.0
"""How long a check of the server's persistence settings is trusted."""


class Durability:
    """STRICT needs WAITAOF (Redis >= 7.2, AOF on) or a server that fsyncs every write itself
    (``appendonly yes`` with ``appendfsync always``). Every start path asks :meth:`strict_problem`."""

    def __init__(self, client: redis.Redis, clock: Callable[[], float] = time.monotonic):
        self.r = client
        self.clock = clock
        self._checked: tuple[float, str | None] | None = None
        self._fsync: Callable[[], None] | bool | None = False  # False: not looked up yet

    def strict_problem(self) -> str | None:
        """None if STRICT is available on this server, else why not (cached for ``RECHECK_S``)."""
        now = self.clock()
        if self._checked is None or now - self._checked[0] >= RECHECK_S:
            self._checked = (now, strict_supported(self.r))
        return self._checked[1]

    def fsync(self) -> Callable[[], None] | None:
        """The call that makes the last write durable before a STRICT step proceeds; None where the
        server already fsyncs every write (or cannot be asked)."""
        if self._fsync is False:
            self._fsync = make_fsync(self.r)
        return self._fsync or None


def make_fsync(client: redis.Redis) -> Callable[[], None] | None:
    """WAITAOF where the server has it (Redis >= 7.2); otherwise the server must fsync every write
    itself (appendfsync always), which the engine checks before a STRICT start."""
    try:
        version = server_version(client)
    except Exception:
        return None
    if version >= (7, 2):

        def fsync() -> None:
            local, _ = client.execute_command("WAITAOF", 1, 0, 2000)
            if int(local) < 1:
                raise ConsistencyUnavailable("WAITAOF: the write was not fsynced locally within 2 s")

        return fsync
    return None


def strict_supported(client: redis.Redis) -> str | None:
    """None if STRICT's durable fsync is available on this server, else why not."""
    try:
        version = server_version(client)
        if version >= (7, 2):
            aof = client.config_get("appendonly").get("appendonly")
            return None if aof == "yes" else "STRICT needs AOF on (appendonly yes)"
        cfg = client.config_get("append*")
    except EngineError:
        raise
    except Exception as exc:
        return f"cannot check the server's persistence settings ({exc})"
    if cfg.get("appendonly") == "yes" and cfg.get("appendfsync") == "always":
        return None
    pretty = ".".join(str(x) for x in version)
    return (
        f"STRICT needs a Redis that fsyncs before each step: Redis >= 7.2 (WAITAOF) or appendonly yes with "
        f"appendfsync always; this server is {pretty} with appendonly {cfg.get('appendonly')}, "
        f"appendfsync {cfg.get('appendfsync')} (for the embedded server: wes up --fsync always)"
    )
