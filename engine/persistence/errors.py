"""The storage errors callers outside ``engine.persistence`` may catch, without importing redis.

``StoreError`` is any failure talking to Redis; ``StoreUnavailable`` the subset that means the server
cannot be reached right now (retry later: a 503 at the API, a pause in a background loop).
"""

from __future__ import annotations

from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

StoreError = RedisError
StoreUnavailable: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)
