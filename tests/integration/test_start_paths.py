"""Every start path goes through the one start use case, so each refuses a STRICT saga on a server that
cannot fsync before each step (the shared test server: appendfsync everysec), and each starts it on one
that can (``strict_engine``: appendfsync always).

The API's path is in tests/api/test_workflows.py (a 409), the CLI's in tests/test_cli.py."""

from __future__ import annotations

import math
import threading
import time

import pytest

from engine.client import EngineClient
from engine.errors import ConsistencyUnavailable
from engine.saga.triggers import TriggerService
from tests.integration.support import define, step

STRICT = {"consistency": "STRICT", "resources": ["sku:{sku}"]}


def triggers(client: EngineClient) -> TriggerService:
    e = client.engine
    service = TriggerService(e.stores.triggers, e.stores.definitions, e.starter, "test-consumer", threading.Event())
    service.refresh(force=True)
    return service


def started(client: EngineClient, name: str) -> list[dict]:
    return client.list(definition=name, limit=10).items


@pytest.mark.parametrize("fsync_always", [False, True], ids=["everysec", "always"])
def test_the_client_checks_strict(client, strict_engine, fsync_always) -> None:
    c = strict_engine.client if fsync_always else client
    define(c, "strict-client", [step("a")], **STRICT)
    if fsync_always:
        assert c.start("strict-client", {"sku": "A"})["created"]
    else:
        with pytest.raises(ConsistencyUnavailable, match="appendfsync always"):
            c.start("strict-client", {"sku": "A"})
        assert started(c, "strict-client") == []


@pytest.mark.parametrize("fsync_always", [False, True], ids=["everysec", "always"])
def test_an_event_trigger_checks_strict(client, strict_engine, fsync_always) -> None:
    c = strict_engine.client if fsync_always else client
    stream = f"{c.settings.key_prefix}:strict-orders"
    define(c, "strict-on-event", [step("a")], trigger={"type": "event", "stream": stream}, **STRICT)
    service = triggers(c)
    service.consume_events()  # creates the consumer group
    c.r.xadd(stream, {"sku": "A"})
    assert service.consume_events() == 1
    assert len(started(c, "strict-on-event")) == (1 if fsync_always else 0)
    # Refused or started, the entry is acknowledged: a refusal is not retried forever.
    assert c.r.xpending(stream, f"{c.settings.key_prefix}-triggers")["pending"] == 0


@pytest.mark.parametrize("fsync_always", [False, True], ids=["everysec", "always"])
def test_a_schedule_trigger_checks_strict(client, strict_engine, fsync_always) -> None:
    c = strict_engine.client if fsync_always else client
    name = define(
        c,
        "strict-nightly",
        [step("a")],
        trigger={"type": "schedule", "cron": "* * * * *", "input": {"sku": "B"}},
        **STRICT,
    )
    service = triggers(c)
    now = math.floor((time.time() - 30) / 60) * 60 + 30.0
    definition_id = c.get_definition(name).definition_id
    c.engine.stores.triggers.fired(definition_id, now - 61)
    assert service.fire_schedules(now) == 1
    assert len(started(c, name)) == (1 if fsync_always else 0)
    # The fire is used up either way: the schedule goes on from it.
    assert c.engine.stores.triggers.last_fire(definition_id) == math.floor(now / 60) * 60


@pytest.mark.parametrize("fsync_always", [False, True], ids=["everysec", "always"])
def test_the_waveless_release_checks_strict(client, strict_engine, fsync_always) -> None:
    """Released orders start through the same use case: refused, they stay on the intake (pending, not
    lost) with the reason recorded; on a server that can fsync, they start."""
    c = strict_engine.client if fsync_always else client
    name = define(c, "strict-order", [step("a")], input_schema={"type": "object"}, **STRICT)
    releaser = EngineClient(c.settings.model_copy(update={"waveless_definition": name}))
    wl = releaser.engine.waveless(name="test-releaser")
    wl.submit([{"order_id": f"o-{i}", "sku": "A"} for i in range(3)])
    assert wl.controller.try_lead()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not wl.controller.process_continuous_flow():
        if wl.status()["last_error"]:
            break
    status = wl.status()
    if fsync_always:
        assert len(started(c, name)) == 3
        assert status["released_total"] == 3
    else:
        assert started(c, name) == []
        assert "cannot start orders" in status["last_error"] and "STRICT" in status["last_error"]
        assert status["pending"] == 3, "refused orders stay on the intake, unacknowledged"
