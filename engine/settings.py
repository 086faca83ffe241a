"""Engine settings: one class, built at the entry point and passed down.

Every knob reads from the environment with the ``WES_`` prefix, except the Redis URL, which also
honours the conventional ``REDIS_URL``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path.home() / ".local" / "share" / "wes"


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WES_", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "WES_REDIS_URL", "redis_url")
    )
    """Redis to use. None: the embedded server that ``wes up`` started under ``home``."""

    home: Path = Field(default_factory=default_home)
    """Data directory of the embedded Redis (AOF files, discovery file, logs)."""

    key_prefix: str = "wes"
    """Namespace of every engine key in Redis; also the RQ queue name."""

    lease_seconds: float = 5.0
    """How long a worker owns a workflow without renewing; a killed worker's sagas resume after it."""

    linger_seconds: float = 10.0
    """How long an idle dispatch job waits for new work before it hands its worker back to RQ."""

    slice_seconds: float = 60.0
    """Longest a single dispatch job runs before it yields to RQ's own loop (heartbeat, maintenance)."""

    claim_batch: int = 16
    """Workflows claimed per round trip."""

    pipeline_depth: int = 2
    """Commits a worker keeps in flight: while one saga's commit travels to Redis, it runs another
    saga's step. 1 waits for every reply before doing anything else."""

    tick_seconds: float = 0.25
    """Period of the worker's safety-net ticker (timers and expired leases when no dispatcher lingers)."""

    feed_maxlen: int = 100_000
    """Approximate length of the global event feed stream."""

    idempotency_ttl_seconds: int = 24 * 3600
    """How long a start's idempotency key maps to the workflow it created."""

    socket_timeout: float = 30.0
    """Socket timeout of Redis clients (redis-py 8 defaults to 5 s, shorter than our blocking reads)."""

    lock_retry_seconds: float = 0.2
    """How soon a STRICT saga waiting for a semantic lock tries again."""

    stats_flush_seconds: float = 1.0
    """How often workers flush their latency histograms to Redis."""

    @field_validator("key_prefix")
    @classmethod
    def _prefix_is_safe(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
            raise ValueError("key_prefix must be 1-40 letters, digits, '_' or '-'")
        return value
