"""Event and schedule triggers."""

from __future__ import annotations

import math
import time

from engine.saga.triggers import TriggerService
from engine.worker.runtime import Runtime
from tests.integration.support import define, step, wait_for


def instances(client, name: str) -> list[dict]:
    return client.list(definition=name, limit=100).items


def test_each_stream_entry_starts_one_instance_even_when_redelivered(client, workers):
    stream = f"{client.settings.key_prefix}:orders"
    define(client, "on-order", [step("a")], trigger={"type": "event", "stream": stream})
    workers(1)

    entries = [
        {"order_id": "o-1", "sku": "A"},
        {"order_id": "o-2", "sku": "B"},
        {"order_id": "o-3", "sku": "C", "correlation_id": "cust-3"},
    ]
    for entry in entries:
        client.r.xadd(stream, entry)
    wait_for(lambda: len(instances(client, "on-order")) == 3, 15, "three instances")
    started = sorted(instances(client, "on-order"), key=lambda i: i["input"]["order_id"])
    assert [i["input"] for i in started] == [
        {"order_id": "o-1", "sku": "A"},
        {"order_id": "o-2", "sku": "B"},
        {"order_id": "o-3", "sku": "C"},
    ]
    assert started[2]["correlation_id"] == "cust-3"
    for inst in started:
        assert client.wait(inst["workflow_id"], 20)["status"] == "COMPLETED"

    # Redeliver every entry (as after a consumer-group reset), then add a fourth as a marker.
    group = f"{client.settings.key_prefix}-triggers"
    client.r.xgroup_setid(stream, group, "0")
    marker = client.r.xadd(stream, {"order_id": "o-4"})
    wait_for(lambda: len(instances(client, "on-order")) >= 4, 15, "the fourth instance")
    # Entries are delivered in order, so reaching the marker means the first three came again.
    assert client.r.xinfo_groups(stream)[0]["last-delivered-id"] == marker
    # A trigger acknowledges an entry only after its start (or refusal) is stored: with nothing pending,
    # every redelivered entry has been handled, so no wait is needed before counting.
    wait_for(lambda: client.r.xpending(stream, group)["pending"] == 0, 5, "every entry acknowledged")

    orders = sorted(i["input"]["order_id"] for i in instances(client, "on-order"))
    assert orders == ["o-1", "o-2", "o-3", "o-4"], "a redelivered entry started a second instance"


def test_schedule_trigger_starts_one_instance_per_fire(client, settings):
    cron_input = {"report": "daily"}
    name = define(
        client, "nightly", [step("a")], trigger={"type": "schedule", "cron": "* * * * *", "input": cron_input}
    )
    assert client.get_definition(name).trigger.cron == "* * * * *"

    runtime = Runtime(settings)

    def trigger_service() -> TriggerService:
        e = runtime.engine
        return TriggerService(e.stores.triggers, e.stores.definitions, e.starter, runtime.name, runtime.stop_event)

    service = trigger_service()
    service.refresh(force=True)
    # A time 30 s past a minute boundary; the last fire handled 61 s before it: exactly one is due.
    now = math.floor((time.time() - 30) / 60) * 60 + 30.0
    key = runtime.dispatch.keys.cron_last(client.get_definition(name).definition_id)
    client.r.set(key, now - 61)

    assert service.fire_schedules(now) == 1
    assert service.fire_schedules(now) == 0, "the same fire fired twice"
    # A second worker that read the last fire before the first one advanced it starts nothing new.
    client.r.set(key, now - 61)
    other = trigger_service()
    other.refresh(force=True)
    other.fire_schedules(now)

    started = instances(client, name)
    assert len(started) == 1
    fire = math.floor(now / 60) * 60
    assert started[0]["input"] == cron_input
    assert started[0]["correlation_id"] == f"cron:{name}:{int(fire)}"
    assert float(client.r.get(key)) == fire
