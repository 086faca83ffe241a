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

    max_in_flight: int = 256
    """Sagas one worker process runs at once, each with its step attempts in flight; at the limit it
    stops claiming. Sagas waiting for a service's bulkhead slot do not count."""

    step_threads: int = 64
    """Threads of a worker that run plain ``def`` handlers (``async def`` handlers and HTTP services run
    on its event loop)."""

    compensation_floor_seconds: float | None = None
    """Least time a saga's compensation is given before it counts as overrunning (the seed's budget is
    twice the forward time). None: 1 s plus one lease, so a worker that dies mid-compensation (another
    takes over when its lease expires) does not by itself make the saga need attention."""

    attempt_grace_seconds: float = 5.0
    """How long past its timeout a blocking handler, which cannot be stopped, is awaited. Past it the
    attempt counts as still running: its step is neither retried nor compensated while it may act (the
    compensation is parked as ``attempt-still-running``) and the saga ends requiring attention."""

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

    # --- waveless order release (engine/saga/waveless.py; the law: engine/domain/waveless.py)
    waveless_enabled: bool = True
    """Run the order release controller in worker processes (one leader at a time)."""

    waveless_definition: str = "order-fulfillment-http"
    """The saga each released order starts (its latest active version); the order is its input."""

    waveless_mode: str = "waveless"
    """Mode until an operator sets one (`wes waveless mode`): ``waveless`` or ``fixed``."""

    waveless_wave_size: int = 100
    """Fixed waves: orders released per wave (until `wes waveless mode fixed --wave-size` says otherwise)."""

    waveless_wave_interval_seconds: float = 5.0
    """Fixed waves: seconds between waves."""

    waveless_tick_seconds: float = 0.1
    """Release interval: at most one release per tick while orders wait (an idle controller releases an
    arriving order at once)."""

    waveless_adjust_seconds: float = 0.5
    """Control interval: how often the load is measured and the batch size adjusted."""

    waveless_leader_ttl_seconds: float = 3.0
    """Lock of the worker running the controller; another worker takes over this long after it dies."""

    waveless_initial_batch: int = 4
    """Batch size before the first adjustment (a new leader continues from the stored one)."""

    waveless_min_batch: int = 1
    """Smallest batch size the law goes down to."""

    waveless_max_batch: int = 50
    """Largest batch size the law goes up to (and the largest an operator may pin)."""

    waveless_max_rate: float = 200.0
    """Orders released per second, at most (and the highest rate an operator may pin)."""

    waveless_target_utilization: float = 0.85
    """Utilization the controller aims at: above it the batch shrinks, and releases stop at it."""

    waveless_worker_slots: int = 0
    """Sagas one worker process runs at once (0: ``max_in_flight``); worker utilization is sagas in
    flight / (live workers x this)."""

    waveless_latency_sla_ms: float = 500.0
    """Step execution p95 above this (over the latency window) shrinks the batch."""

    waveless_latency_window_seconds: float = 10.0
    """Window of the step latency p95 and the throughput the controller reads from the stats rollups."""

    waveless_increase: int = 2
    """Additive increase of the batch size per adjustment under spare capacity."""

    waveless_decrease: float = 0.7
    """Multiplicative decrease when utilization or latency is past its target."""

    waveless_breaker_decrease: float = 0.5
    """Multiplicative decrease while a breaker of a service the saga calls is open."""

    waveless_decisions_maxlen: int = 10_000
    """Approximate length of the controller's decision stream."""

    metrics_enabled: bool = True
    """Record Prometheus metrics (labelled counters and SLA histograms) and flush them to Redis with the
    stats, for ``wes exporter`` to serve. Off: only the stats rollups are kept."""

    metrics_host: str = "127.0.0.1"
    """Address ``wes exporter`` (and ``wes up``) serves ``/metrics`` on; 0.0.0.0 in a container."""

    metrics_port: int = 9464
    """Port of ``/metrics`` (9464: the port registered for OpenTelemetry/Prometheus exporters)."""

    @property
    def compensation_floor(self) -> float:
        if self.compensation_floor_seconds is not None:
            return self.compensation_floor_seconds
        return 1.0 + self.lease_seconds

    @field_validator("key_prefix")
    @classmethod
    def _prefix_is_safe(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
            raise ValueError("key_prefix must be 1-40 letters, digits, '_' or '-'")
        return value
