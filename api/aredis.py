"""The API's asyncio Redis client (auth lookups, rate limits, audit writes, the live feed), with the
same URL forms and explicit socket timeout as the engine's clients."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from engine import EngineSettings


def connect_async(settings: EngineSettings, url: str, *, socket_timeout: float | None = None) -> aioredis.Redis:
    options = {
        "decode_responses": True,
        "socket_timeout": socket_timeout or settings.socket_timeout,
        "socket_connect_timeout": 5.0,
        "protocol": 2,
        "health_check_interval": 30,
    }
    if not url.startswith("redis+sentinel://"):
        return aioredis.Redis.from_url(url, **options)
    parsed = urlparse(url)
    netloc, password = parsed.netloc, None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        password = unquote(creds.split(":", 1)[-1]) or None
    hosts = [(h, int(p or 26379)) for h, _, p in (part.partition(":") for part in netloc.split(","))]
    path = [p for p in parsed.path.split("/") if p]
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, socket_timeout=options["socket_timeout"], password=password)
    return sentinel.master_for(path[0], db=db, password=password, **options)
