"""Redis clients from settings: REDIS_URL (redis://, rediss://, redis+sentinel://) or the embedded server.

One URL parser serves the engine's clients and the control API's asyncio client. Clients use RESP2
(stable reply shapes across redis-py versions) and an explicit socket timeout, because redis-py 8's
5 s default is shorter than our blocking reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from engine.errors import ConfigurationError
from engine.settings import EngineSettings

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """``redis+sentinel://[:password@]host:port[,host:port...]/master_name[/db]``."""

    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """ValueError for a sentinel URL without a master name or with a bad port or db."""
    parsed = urlparse(url)
    netloc = parsed.netloc
    password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        password = unquote(creds.split(":", 1)[-1]) or None
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.partition(":")
        hosts.append((host, int(port or SENTINEL_PORT)))
    path = [p for p in parsed.path.split("/") if p]
    if not path:
        raise ValueError("a sentinel URL needs the master name as its path")
    db = int(path[1]) if len(path) > 1 else 0
    return SentinelTarget(tuple(hosts), path[0], db, password)


def resolve_url(settings: EngineSettings) -> str:
    if settings.redis_url:
        return settings.redis_url
    from engine.persistence.embedded import read_discovery

    info = read_discovery(settings.home)
    if info is None:
        raise ConfigurationError(
            f"no Redis server: set REDIS_URL, or start the embedded one with `wes up` "
            f"(no running server recorded in {settings.home})"
        )
    return info.url


def _options(settings: EngineSettings, decode: bool, socket_timeout: float | None) -> dict[str, Any]:
    return {
        "decode_responses": decode,
        "socket_timeout": socket_timeout or settings.socket_timeout,
        "socket_connect_timeout": 5.0,
        "protocol": 2,
        "health_check_interval": 30,
    }


def connect(settings: EngineSettings, *, decode: bool = True, url: str | None = None) -> redis.Redis:
    """A client for the engine (``decode=True``) or for RQ (``decode=False``, RQ stores bytes)."""
    url = url or resolve_url(settings)
    options = _options(settings, decode, None)
    try:
        if url.startswith(SENTINEL_SCHEME):
            target = parse_sentinel_url(url)
            sentinel = Sentinel(list(target.hosts), socket_timeout=options["socket_timeout"], password=target.password)
            return sentinel.master_for(target.master, db=target.db, password=target.password, **options)
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"bad REDIS_URL {url!r}: {exc}")


def connect_async(settings: EngineSettings, url: str, *, socket_timeout: float | None = None) -> aioredis.Redis:
    """An asyncio client (decoded replies) to the same server as :func:`connect`; it connects on first use."""
    options = _options(settings, True, socket_timeout)
    try:
        if url.startswith(SENTINEL_SCHEME):
            target = parse_sentinel_url(url)
            sentinel = AsyncSentinel(
                list(target.hosts), socket_timeout=options["socket_timeout"], password=target.password
            )
            return sentinel.master_for(target.master, db=target.db, password=target.password, **options)
        return aioredis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"bad REDIS_URL {url!r}: {exc}")


def server_version(client: redis.Redis) -> tuple[int, ...]:
    raw = client.info("server").get("redis_version", "0")
    return tuple(int(x) for x in str(raw).split(".")[:3] if x.isdigit())
