"""Chaos on the concurrent executor: worker processes SIGKILLed and Redis restarted while hundreds of
sagas (plain and ``async def`` handlers, some compensating) are in flight. Nothing may be lost, no step
may complete twice, no completed step may be compensated twice, and every saga's stored state must be the
replay of its events.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from engine.client import EngineClient
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.worker.pool import WorkerPool
from tests.conftest import fast_settings
from tests.integration.support import STEP, UNDO

pytestmark = pytest.mark.timeout(150)

ASYNC = "tests.handlers:async_step"
SAGAS = 240


def chaos_definition() -> dict:
    steps = []
    for i, sid in enumerate(("reserve", "pick", "pack", "ship")):
        steps.append(
            {
                "id": sid,
                "action": ASYNC if i % 2 else STEP,
                "compensation": UNDO,
                "retry": {"max_attempts": 5, "backoff": "LINEAR", "initial_delay": "50ms"},
                "timeout": "10s",
            }
        )
    return {"name": "chaos", "consistency": "EXACTLY_ONCE", "steps": steps}


def test_sigkills_and_a_redis_restart_lose_nothing_and_run_nothing_twice(tmp_path):
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port, fsync="always")  # a restart keeps every write
    url = server.start().url
    settings = fast_settings(url)
    client = EngineClient(settings)
    pool = WorkerPool(settings, concurrency=3, grace_seconds=10.0)
    try:
        client.apply_definition(chaos_definition())
        pool.start()
        ids, failing = [], set()
        for n in range(SAGAS):
            plan = {sid: {"sleep": 0.25 * (1 + n % 3)} for sid in ("reserve", "pick", "pack", "ship")}
            if n % 5 == 0:
                plan["ship"]["fail"] = "final"  # a fifth compensate
            wid = client.start("chaos", {"plan": plan})["workflow_id"]
            ids.append(wid)
            if n % 5 == 0:
                failing.add(wid)

        faults = [(1.0, "kill"), (2.0, "restart"), (3.0, "kill"), (4.0, "kill")]
        began = time.monotonic()
        done: dict[str, dict] = {}
        while len(done) < len(ids):
            elapsed = time.monotonic() - began
            if faults and elapsed >= faults[0][0]:
                _, fault = faults.pop(0)
                if fault == "kill":
                    os.kill(pool.pids[int(elapsed) % len(pool.pids)], signal.SIGKILL)
                else:
                    server.stop()
                    server.start()
            assert elapsed < 120, f"{len(ids) - len(done)} sagas still not finished after 120 s"
            pool.check()  # a killed worker is replaced, as `wes worker` does
            try:
                for snap in client.engine.stores.workflows.snapshots([w for w in ids if w not in done]):
                    if snap["status"] in ("COMPLETED", "COMPENSATED", "CANCELLED"):
                        done[snap["workflow_id"]] = snap
            except Exception:  # Redis restarting
                pass
            time.sleep(0.1)
        assert not faults, "the run ended before every fault was injected"

        recovered = 0
        for wid in ids:
            snap = done[wid]
            expected = "COMPENSATED" if wid in failing else "COMPLETED"
            assert snap["status"] == expected, (wid, snap["status"], snap.get("reason"))
            events = client.events(wid)
            executed = Counter(e["step_id"] for e in events if e["type"] == "StepExecuted")
            assert all(n == 1 for n in executed.values()), f"{wid}: a step completed twice: {executed}"
            compensated = Counter(e["step_id"] for e in events if e["type"] == "StepCompensated")
            assert all(n == 1 for n in compensated.values()), f"{wid}: compensated twice: {compensated}"
            if wid in failing:
                assert set(compensated) == set(executed), f"{wid}: {executed} vs {compensated}"
                assert snap["requires_attention"] is False
            report = client.validate_consistency(wid)
            assert report.consistent, (wid, report.differences)
            recovered += sum(1 for e in events if e["type"] == "StepStarted" and e["recovered"])
        assert recovered > 0, "no kill hit a step in flight: the faults came too late to test anything"
    finally:
        pool.stop()
        server.stop()
