"""Every Redis key the engine uses, built in one place.

Keys of one workflow share the hash tag ``{wf:<id>}`` so they live in one Cluster slot. The type of
each key is noted beside its builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Keys:
    prefix: str = "wes"

    # --- one workflow
    def state(self, wid: str) -> str:  # HASH v, fence, snap, status, type, created, updated, owner, lease_until
        return f"{self.prefix}:{{wf:{wid}}}:state"

    def events(self, wid: str) -> str:  # STREAM the workflow's domain events (v, t, d)
        return f"{self.prefix}:{{wf:{wid}}}:events"

    # --- global
    @cached_property
    def feed(self) -> str:  # STREAM every workflow's events (wf, v, t, d), capped
        return f"{self.prefix}:feed"

    @cached_property
    def sched(self) -> str:  # ZSET workflow id -> epoch ms when a worker should next look at it
        return f"{self.prefix}:sched"

    @cached_property
    def ready(self) -> str:  # ZSET fresh starts no worker claimed yet: workflow id -> created ms (FIFO)
        return f"{self.prefix}:ready"

    def by_status(self, status: str) -> str:  # ZSET workflow id -> created ms
        key = self._status_keys.get(status)
        if key is None:
            key = self._status_keys[status] = f"{self.prefix}:idx:status:{status}"
        return key

    @cached_property
    def _status_keys(self) -> dict[str, str]:
        return {}

    @cached_property
    def all_workflows(self) -> str:  # ZSET workflow id -> created ms
        return f"{self.prefix}:idx:all"

    def by_definition(self, name: str) -> str:  # ZSET workflow id -> created ms
        return f"{self.prefix}:idx:def:{name}"

    def by_correlation(self, correlation_id: str) -> str:  # ZSET workflow id -> created ms
        return f"{self.prefix}:idx:corr:{correlation_id}"

    @cached_property
    def attention(self) -> str:  # ZSET workflow id -> ms when it started needing an operator
        return f"{self.prefix}:idx:attention"

    def idempotency(self, key: str) -> str:  # STRING start idempotency key -> workflow id (TTL)
        return f"{self.prefix}:idem:{key}"

    def lock(self, resource: str) -> str:  # STRING semantic lock of a STRICT saga -> workflow id
        return f"{self.prefix}:lock:{resource}"

    # --- dispatch
    @cached_property
    def idle(self) -> str:  # ZSET dispatcher id -> ms until which it waits on the wake list
        return f"{self.prefix}:dispatch:idle"

    @cached_property
    def wake(self) -> str:  # LIST wake tokens for idle dispatchers
        return f"{self.prefix}:dispatch:wake"

    @cached_property
    def queued(self) -> str:  # STRING set while a dispatch job is queued but not started (PX)
        return f"{self.prefix}:dispatch:queued"

    @cached_property
    def workers(self) -> str:  # ZSET worker name -> ms of its last heartbeat
        return f"{self.prefix}:workers"

    # --- definitions
    @cached_property
    def definitions(self) -> str:  # HASH "name:version" -> definition JSON
        return f"{self.prefix}:defs"

    def definition_versions(self, name: str) -> str:  # ZSET version -> version
        return f"{self.prefix}:defs:versions:{name}"

    @cached_property
    def definition_hashes(self) -> str:  # HASH "name:version" -> content hash
        return f"{self.prefix}:defs:hash"

    @cached_property
    def active_definitions(self) -> str:  # SET "name:version" of active versions
        return f"{self.prefix}:defs:active"

    # --- services
    @cached_property
    def services(self) -> str:  # HASH service name -> endpoint configuration JSON
        return f"{self.prefix}:svc:endpoints"

    @cached_property
    def services_version(self) -> str:  # STRING bumped at every configuration change (cache invalidation)
        return f"{self.prefix}:svc:version"

    def service_health(self, service: str) -> str:  # HASH instance id -> health JSON
        return f"{self.prefix}:svc:{service}:health"

    def in_flight(self, service: str, instance: str) -> str:  # ZSET call token -> expiry ms
        return f"{self.prefix}:svc:{service}:inflight:{instance}"

    def breaker(self, service: str) -> str:  # HASH state, open_until, trips, forced, calls, failures...
        return f"{self.prefix}:svc:{service}:breaker"

    def breaker_window(self, service: str) -> str:  # LIST last outcomes, newest first (1 failure)
        return f"{self.prefix}:svc:{service}:window"

    def sticky(self, service: str, correlation_id: str) -> str:  # STRING instance id (TTL)
        return f"{self.prefix}:svc:{service}:sticky:{correlation_id}"

    def drain(self, service: str) -> str:  # STRING instance whose sticky sessions are being moved (TTL)
        return f"{self.prefix}:svc:{service}:drain"

    def health_lock(self, service: str) -> str:  # STRING the worker checking this service this round (PX)
        return f"{self.prefix}:svc:{service}:health-lock"

    # --- waveless order flow
    @cached_property
    def orders_intake(self) -> str:  # STREAM orders waiting for release (fields: order JSON, arrived_at)
        return f"{self.prefix}:orders:intake"

    @cached_property
    def orders_depth(self) -> str:  # STRING orders accepted and not yet released (the queue depth)
        return f"{self.prefix}:orders:depth"

    @cached_property
    def waveless_state(self) -> str:  # HASH mode, strategy, batch_size, rate, queue_depth, utilization,
        return f"{self.prefix}:waveless:state"  # released_total, last_reason, pinned_*, updated_at

    @cached_property
    def waveless_decisions(self) -> str:  # STREAM the controller's decisions (capped), for operators
        return f"{self.prefix}:waveless:decisions"

    @cached_property
    def waveless_leader(self) -> str:  # STRING the worker running the release controller (PX)
        return f"{self.prefix}:waveless:leader"

    # --- control API
    @cached_property
    def api_keys(self) -> str:  # HASH API key id -> JSON {role, name, salt, hash, created_at, created_by}
        return f"{self.prefix}:api:keys"

    @cached_property
    def api_bootstrap(self) -> str:  # STRING held while the first admin key is created (PX)
        return f"{self.prefix}:api:bootstrap"

    @cached_property
    def api_audit(self) -> str:  # STREAM control actions (who, what, when, result), capped
        return f"{self.prefix}:api:audit"

    def api_rate(self, key_id: str) -> str:  # HASH token bucket of one API key (tokens, ms) (PX)
        return f"{self.prefix}:api:rate:{key_id}"

    # --- triggers
    def cron_last(self, definition_id: str) -> str:  # STRING epoch of the last cron fire handled
        return f"{self.prefix}:trigger:cron:{definition_id}"

    # --- stats
    def stats(self, bucket_start: int) -> str:  # HASH metric|bucket -> count, per interval (TTL)
        return f"{self.prefix}:stats:{bucket_start}"

    @cached_property
    def stats_index(self) -> str:  # ZSET interval start -> interval start
        return f"{self.prefix}:stats:index"

    # --- Prometheus metrics (engine/metrics/, written and read by engine/persistence/metrics_store.py)
    @cached_property
    def metrics(self) -> str:  # HASH cumulative counters and histogram buckets of every process, never
        return f"{self.prefix}:metrics"  # reset: c|<counter>, h|<hist>|<labels...>|<bucket>, s|<hist>|<labels...>

    @cached_property
    def queue_name(self) -> str:
        """The RQ queue that carries dispatch jobs (RQ adds its own ``rq:`` keys)."""
        return self.prefix

    @cached_property
    def rq_queue(self) -> str:  # LIST RQ's own: ids of queued dispatch jobs (written by RQ, read by the exporter)
        return f"rq:queue:{self.queue_name}"
