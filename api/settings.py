"""Settings of the control API: one class, read from ``WES_API_*`` (Redis and key prefix come from the
engine's own ``EngineSettings``: ``REDIS_URL``, ``WES_KEY_PREFIX``, ``WES_HOME``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine import EngineSettings


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WES_API_", extra="ignore", populate_by_name=True)

    engine: EngineSettings = Field(default_factory=EngineSettings)
    """Redis, key prefix and the engine's knobs (from ``REDIS_URL`` / ``WES_*``)."""

    host: str = "127.0.0.1"
    port: int = 8000

    keys: str = ""
    """Comma-separated ``role:key`` pairs (roles: viewer, operator, admin). Hashed when loaded."""

    keys_file: Path | None = None
    """One key per line: ``role:key``, or ``role:sha256:<salt hex>:<digest hex>`` so the file holds no
    secret (``python -m api.auth hash ROLE``); ``#`` starts a comment."""

    auth_cache_seconds: float = 2.0
    """How long a verified key is trusted without looking again (a revoked key stops working within it)."""

    rate_limit_per_second: float = 20.0
    """Control requests (every non-GET) per API key per second, sustained; 0 turns rate limiting off."""

    rate_limit_burst: int = 100
    """Control requests an API key may send at once before the sustained rate applies."""

    audit_maxlen: int = 100_000
    """Approximate number of control actions the audit log keeps."""

    max_bulk: int = 1000
    """Most workflows one bulk request acts on."""

    sse_block_ms: int = 5000
    """How long the live feed waits on Redis per read before checking whether the client is gone."""

    chaos_enabled: bool = False
    """Expose the simulated services' chaos knobs (demo only; `wes up --demo` turns it on)."""

    metrics_engine: bool = True
    """``/metrics`` includes the engine's families (workflows, SLA histograms, breakers...); turn it off
    where ``wes exporter`` is scraped too, so they are not collected twice."""
