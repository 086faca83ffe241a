"""engine/metrics/: names, buckets and labels; the recorder; the collector against a real Redis.

The collector is exercised on what real worker processes flushed (counters summed across processes,
SLA buckets, pre-initialised label sets) and on live state (breakers, waveless hash, workflows stuck
past their deadline after their worker was killed).
"""

from __future__ import annotations

import re
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import (
    COUNTERS,
    HISTOGRAMS,
    LATENCY_INDICATORS,
    SLA_TARGETS,
    EngineCollector,
    MetricsRecorder,
    build_registry,
)
from engine.persistence.keys import Keys
from engine.persistence.stores import Stores
from engine.settings import EngineSettings
from engine.stats import Series, StatsRecorder
from tests.integration.support import define, kill_owner, start, step, wait_for, wait_ready

pytestmark = pytest.mark.timeout(60)

FORBIDDEN_LABELS = {"workflow_id", "wid", "id", "job_id", "correlation_id", "idempotency_key", "error", "message"}


def scrape(client) -> dict[str, list]:
    """name -> samples of one scrape of the collector over the test's Redis and prefix."""
    registry = build_registry(client.engine.stores)
    text = generate_latest(registry).decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


# ====================================================================== definitions
@pytest.mark.unit
def test_every_sla_target_and_bar_is_an_exact_bucket_bound() -> None:
    by_name = {spec.name: spec for spec in HISTOGRAMS.values()}
    for t in SLA_TARGETS:
        assert t.seconds in by_name[t.metric].buckets, t
        assert t.bar_seconds in by_name[t.bar_metric].buckets, t
    seed = {t.sli: t.seconds for t in SLA_TARGETS}
    assert seed == {
        "workflow_start": 1.0,
        "step_execution": 30.0,
        "compensation": 60.0,
        "state_persistence": 0.1,
        "event_publishing": 0.05,
    }
    bars = {t.sli: t.bar_seconds for t in SLA_TARGETS}
    assert bars == {
        "workflow_start": 0.01,
        "step_execution": 0.002,
        "compensation": 0.002,
        "state_persistence": 0.002,
        "event_publishing": 0.001,
    }
    # float `le` strings (Prometheus 3 normalises le to floats: le="1" would never match)
    assert [t.le for t in SLA_TARGETS] == ["1.0", "30.0", "60.0", "0.1", "0.05"]


@pytest.mark.unit
def test_dispatch_lag_spans_1_ms_to_60_s_with_its_bar_as_a_bucket() -> None:
    spec = HISTOGRAMS["dispatch_lag"]
    assert spec.name == "wes_dispatch_lag_seconds" and spec.labels == ()
    assert (spec.buckets[0], spec.buckets[-1]) == (0.001, 60.0)
    by_name = {h.name: h for h in HISTOGRAMS.values()}
    assert [(i.sli, i.quantile, i.bar_seconds, i.bar_le) for i in LATENCY_INDICATORS] == [
        ("dispatch_lag", 0.95, 0.1, "0.1")
    ]
    for ind in LATENCY_INDICATORS:
        assert HISTOGRAMS[ind.sli].name == ind.metric and ind.bar_seconds in by_name[ind.metric].buckets


@pytest.mark.unit
def test_names_follow_prometheus_conventions() -> None:
    for spec in HISTOGRAMS.values():
        assert re.fullmatch(r"wes_[a-z_]+_seconds", spec.name), spec.name
        assert list(spec.buckets) == sorted(set(spec.buckets)), spec.name
        assert not FORBIDDEN_LABELS & set(spec.labels)
    for spec in COUNTERS.values():
        assert re.fullmatch(r"wes_[a-z_]+_total", spec.name), spec.name
        assert not FORBIDDEN_LABELS & set(spec.labels)


# ====================================================================== recorder
@pytest.mark.unit
def test_recorder_buckets_are_inclusive_upper_bounds_and_labels_must_match() -> None:
    rec = MetricsRecorder()
    stats = StatsRecorder(sink=rec)
    stats.observe("state_persistence", 0.1)  # exactly the seed target: inside le="0.1"
    stats.observe("state_persistence", 0.10000001)
    stats.observe("state_persistence", 99.0)  # past the last bound: +Inf only
    stats.observe("step_execution", 0.5, ("wf", "s1"))
    stats.observe("step_execution", 0.5, ("wf",))  # wrong label arity: dropped, never mislabelled
    stats.observe("no_such_histogram", 1.0)
    stats.incr("steps", ("wf", "s1", "completed"), 2)
    stats.incr("service_calls", ("payment", "ok"), 3)  # the stats rollups' per-service calls: not a Prometheus counter
    stats.drain()
    drained = rec.drain()
    bounds = HISTOGRAMS["state_persistence"].buckets
    i = bounds.index(0.1)
    persistence = drained.histograms[Series("state_persistence")]
    assert persistence.buckets == {i: 1, i + 1: 1, len(bounds): 1}
    assert persistence.total == pytest.approx(99.20000001)
    step = drained.histograms[Series("step_execution", ("wf", "s1"))]
    assert step.buckets == {HISTOGRAMS["step_execution"].buckets.index(0.5): 1}
    assert set(drained.histograms) == {Series("state_persistence"), Series("step_execution", ("wf", "s1"))}
    assert drained.counters == {Series("steps", ("wf", "s1", "completed")): 2}
    assert not rec.drain()  # drained: the next flush adds only what is new


def test_flushes_of_several_processes_add_up_and_never_reset(client) -> None:
    keys = Keys(client.settings.key_prefix)
    for _ in range(3):  # three "processes", each flushing its own increments
        rec = MetricsRecorder()
        stats = StatsRecorder(sink=rec)
        stats.observe("workflow_start", 0.004, ("wf-a",))
        stats.observe("workflow_start", 2.0, ("wf-a",))
        stats.incr("workflows_started", ("wf-a",), 2)
        stats.drain()
        assert client.engine.stores.metrics.add(rec.drain()) == 4
    # the hash's format, which dashboards and the API read, is fixed
    bounds = HISTOGRAMS["workflow_start"].buckets
    stored = client.r.hgetall(keys.metrics)
    assert float(stored.pop("s|workflow_start|wf-a")) == pytest.approx(6.012)
    assert stored == {
        "c|workflows_started|wf-a": "6",
        f"h|workflow_start|wf-a|{bounds.index(0.005)}": "3",
        f"h|workflow_start|wf-a|{bounds.index(2.5)}": "3",
    }
    samples = scrape(client)
    assert value(samples, "wes_workflows_started_total", workflow_type="wf-a") == 6
    assert value(samples, "wes_workflow_start_seconds_count", workflow_type="wf-a") == 6
    assert value(samples, "wes_workflow_start_seconds_bucket", workflow_type="wf-a", le="0.01") == 3
    assert value(samples, "wes_workflow_start_seconds_bucket", workflow_type="wf-a", le="1.0") == 3
    assert value(samples, "wes_workflow_start_seconds_bucket", workflow_type="wf-a", le="+Inf") == 6
    assert value(samples, "wes_workflow_start_seconds_sum", workflow_type="wf-a") == pytest.approx(6.012)


def test_dispatch_lag_reaches_prometheus_and_the_rollups_and_fresh_starts_count_as_runnable(client) -> None:
    for seconds in (0.004, 0.05, 0.3, 75.0):
        client.engine.stats.observe("dispatch_lag", seconds)
    t0 = time.time()
    client.flush_stats()
    define(client, "metrics-queued", [step("a")])
    for _ in range(3):
        start(client, "metrics-queued")  # no worker runs here: they wait as fresh starts

    s = scrape(client)
    assert value(s, "wes_dispatch_lag_seconds_count") == 4
    assert value(s, "wes_dispatch_lag_seconds_bucket", le="0.1") == 2
    assert value(s, "wes_dispatch_lag_seconds_bucket", le="60.0") == 3
    assert value(s, "wes_dispatch_lag_seconds_sum") == pytest.approx(75.354)
    assert value(s, "wes_queue_depth", queue="runnable") == 3
    assert value(s, "wes_scheduled_workflows") == 3
    assert value(s, "wes_runnable_oldest_age_seconds") >= 0
    hists, _ = client.stats(t0 - 20, time.time())
    assert hists["dispatch_lag"].count == 4


# ====================================================================== collector on a real engine
def test_worker_processes_metrics_reach_the_collector_with_known_labels_preinitialised(client, workers) -> None:
    define(client, "metrics-flow", [step("a"), step("b"), step("c")])
    pool = workers(2)
    wait_ready(client, pool)
    ok = [start(client, "metrics-flow") for _ in range(6)]
    bad = [start(client, "metrics-flow", {"plan": {"c": {"fail": "final"}}}) for _ in range(2)]
    for wid in ok + bad:
        client.wait(wid, 20)

    def flushed() -> dict | None:
        s = scrape(client)
        done = value(s, "wes_workflows_finished_total", workflow_type="metrics-flow", outcome="compensated")
        return s if done == 2 and value(s, "wes_workflows_started_total", workflow_type="metrics-flow") == 8 else None

    s = wait_for(flushed, 10, "flushed metrics")
    assert value(s, "wes_workflows_finished_total", workflow_type="metrics-flow", outcome="completed") == 6
    assert value(s, "wes_steps_total", workflow_type="metrics-flow", step="c", outcome="completed") == 6
    assert value(s, "wes_steps_total", workflow_type="metrics-flow", step="c", outcome="failed") == 2
    assert value(s, "wes_steps_total", workflow_type="metrics-flow", step="a", outcome="recovered") == 0
    assert value(s, "wes_compensations_started_total", workflow_type="metrics-flow") == 2
    assert value(s, "wes_compensation_actions_total", workflow_type="metrics-flow", outcome="compensated") == 4
    assert value(s, "wes_compensation_actions_total", workflow_type="metrics-flow", outcome="parked") == 0
    assert value(s, "wes_step_execution_seconds_count", workflow_type="metrics-flow", step="a") == 8
    assert value(s, "wes_compensation_duration_seconds_count", workflow_type="metrics-flow") == 2
    assert value(s, "wes_workflow_duration_seconds_count", workflow_type="metrics-flow", outcome="completed") == 6
    assert value(s, "wes_workflows", status="COMPLETED") == 6
    assert value(s, "wes_workflows", status="COMPENSATED") == 2
    assert value(s, "wes_workers_alive") == 2
    assert value(s, "wes_worker_heartbeat_age_seconds") < 5
    assert value(s, "wes_redis_up") == 1
    # persistence and event publishing are timed on one commit in eight
    assert value(s, "wes_state_persistence_seconds_count") >= 1
    assert value(s, "wes_event_publish_seconds_count") >= 1
    # a definition applied but never run is there at zero, every outcome of every step
    define(client, "metrics-idle", [step("x"), step("y")])
    time.sleep(0.01)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(client.engine.stores))
    idle = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.labels.get("workflow_type") == "metrics-idle"
    }
    for outcome in ("completed", "failed", "retried", "recovered"):
        labels = (("outcome", outcome), ("step", "y"), ("workflow_type", "metrics-idle"))
        assert ("wes_steps_total", labels) in idle
    assert ("wes_workflows_started_total", (("workflow_type", "metrics-idle"),)) in idle
    # never an id in a label
    for samples in s.values():
        for sample in samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample


def test_workflow_left_running_past_its_deadline_is_reported_stuck(client, workers) -> None:
    define(client, "metrics-stuck", [step("slow")], timeout="1s")
    pool = workers(1)
    wait_ready(client, pool)
    wid = start(client, "metrics-stuck", {"plan": {"slow": {"sleep": 30}}})
    wait_for(lambda: client.status(wid).value == "RUNNING" and client.r.hget(client.repo.keys.state(wid), "owner"),
             10, "the saga to run")  # fmt: skip
    kill_owner(client, pool, wid)  # nobody will time it out now
    pool.stop()
    s = wait_for(
        lambda: (s := scrape(client)) and value(s, "wes_workflows_past_deadline", status="RUNNING") == 1 and s,
        10,
        "the stuck workflow to show",
    )
    assert value(s, "wes_workflows_past_deadline", status="PAUSED") == 0
    assert value(s, "wes_workflows", status="RUNNING") == 1


def test_breakers_instances_and_waveless_state_are_read_live_and_defensively(client) -> None:
    client.services.apply(
        {"services": {"payment": {"instances": [{"id": "payment-1", "url": "http://127.0.0.1:9", "capacity": 4}]}}}
    )
    s = scrape(client)
    assert value(s, "wes_circuit_breaker_state", service="payment", state="CLOSED") == 1
    assert value(s, "wes_circuit_breaker_trips_total", service="payment") == 0
    assert value(s, "wes_service_calls_total", service="payment", outcome="failed") == 0
    assert value(s, "wes_service_instance_up", service="payment", service_instance="payment-1") == 1
    assert value(s, "wes_service_instance_capacity", service="payment", service_instance="payment-1") == 4
    assert value(s, "wes_service_target_utilization_ratio", service="payment") == 0.85

    client.services.force("payment", "OPEN")
    s = scrape(client)  # the very next scrape shows it: read from Redis at scrape time
    assert value(s, "wes_circuit_breaker_state", service="payment", state="OPEN") == 1
    assert value(s, "wes_circuit_breaker_state", service="payment", state="CLOSED") == 0
    assert value(s, "wes_circuit_breaker_forced", service="payment", mode="OPEN") == 1

    keys = Keys(client.settings.key_prefix)
    assert value(s, "wes_waveless_batch_size") == 0  # no controller yet: zeros, not errors
    client.r.hset(
        keys.waveless_state,
        mapping={"mode": "waveless", "batch_size": "12", "rate": "3.5", "utilization": "garbage",
                 "released_total": "40", "limit": "headroom", "updated_at": "1700000000.5"},
    )  # fmt: skip
    client.r.set(keys.orders_depth, "17")
    s = scrape(client)
    assert value(s, "wes_waveless_batch_size") == 12
    assert value(s, "wes_waveless_release_rate_per_second") == 3.5
    assert value(s, "wes_waveless_utilization_ratio") == 0
    assert value(s, "wes_waveless_orders_total", outcome="released") == 40
    assert value(s, "wes_waveless_mode", mode="waveless") == 1
    assert value(s, "wes_waveless_mode", mode="fixed") == 0
    assert value(s, "wes_waveless_limit", limit="headroom") == 1
    assert value(s, "wes_queue_depth", queue="intake") == 17


@pytest.mark.unit
def test_redis_down_is_reported_not_raised() -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    registry = build_registry(Stores(EngineSettings(key_prefix="nowhere"), "redis://127.0.0.1:1", dead))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["wes_redis_up"].samples[0].value == 0
    assert families["wes_exporter_errors"].samples[0].value == 1
    assert "wes_workflows" not in families
