"""Redis clients from settings: REDIS_URL (redis://, rediss://, redis+sentinel://) or the embedded server.

Clients use RESP2 (stable reply shapes across redis-py versions) and an explicit socket timeout,
because redis-py 8's 5 s default is shorter than our blocking reads.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import redis
from redis.sentinel import Sentinel

from engine.errors import ConfigurationError
from engine.settings import EngineSettings


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


def connect(settings: EngineSettings, *, decode: bool = True, url: str | None = None) -> redis.Redis:
    """A client for the engine (``decode=True``) or for RQ (``decode=False``, RQ stores bytes)."""
    url = url or resolve_url(settings)
    options = {
        "decode_responses": decode,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": 5.0,
        "protocol": 2,
        "health_check_interval": 30,
    }
    try:
        if url.startswith("redis+sentinel://"):
            return _sentinel_master(url, options)
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"bad REDIS_URL {url!r}: {exc}")


def _sentinel_master(url: str, options: dict) -> redis.Redis:
    """``redis+sentinel://[:password@]host:port[,host:port...]/master_name[/db]``."""
    parsed = urlparse(url)
    netloc = parsed.netloc
    password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        password = unquote(creds.split(":", 1)[-1]) or None
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.partition(":")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parsed.path.split("/") if p]
    if not path:
        raise ValueError("a sentinel URL needs the master name as its path")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, socket_timeout=options["socket_timeout"], password=password)
    return sentinel.master_for(path[0], db=db, password=password, **options)


def server_version(client: redis.Redis) -> tuple[int, ...]:
    raw = client.info("server").get("redis_version", "0")
    return tuple(int(x) for x in str(raw).split(".")[:3] if x.isdigit())
