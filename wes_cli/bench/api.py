"""Latency of the control API with many stored workflows, over real HTTP against uvicorn.

    wes bench api [--stored 100000] [--requests 2000] [--json]
    python -m wes_cli.bench.api [--stored 100000] [--requests 2000] [--json]

Starts its own Redis (embedded, AOF everysec) unless ``REDIS_URL`` is set, stores ``stored``
workflows under a unique key prefix, all RUNNING (no workers run, so they stay so), starts the API
as `wes up` does (uvicorn subprocess, rate limiting on with a limit the bench never reaches, audit
on), then times ``requests`` sequential calls of each, after a warm-up:

- ``POST /api/v1/workflows`` (start; bar p99 <= 20 ms),
- ``GET /api/v1/workflows?status=RUNNING&limit=50`` (first page; bar p99 <= 50 ms),
- the same with a cursor from the middle of the index (deep pagination).

Everything it stored is deleted at the end (with ``REDIS_URL``) or the server is discarded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from engine.client import EngineClient
from engine.domain import events as ev
from engine.domain.instance import WorkflowInstance
from engine.domain.status import WorkflowStatus
from engine.persistence.embedded import EmbeddedRedis, free_port
from engine.persistence.workflow_repository import CommitRequest
from engine.saga.starting import step_plan
from engine.settings import EngineSettings
from wes_cli.bench.support import relay_logs
from wes_cli.bench.throughput import HANDLER
from wes_cli.components import ApiComponent

DEFINITION = "api-bench"
BATCH = 500
WARMUP = 200
BARS_MS = {"start_p99_ms": 20.0, "list_p99_ms": 50.0}


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed_running(client: EngineClient, count: int) -> float:
    """Store ``count`` RUNNING workflows: a create each, then their WorkflowStarted commits in flight together."""
    definition = client.definitions.get(DEFINITION)
    repo = client.engine.stores.workflows
    plan = step_plan(definition)
    t0 = time.perf_counter()
    for start in range(0, count, BATCH):
        requests = []
        for _ in range(min(BATCH, count - start)):
            now = time.time()
            wid = uuid.uuid4().hex
            created = ev.WorkflowCreated(wid, now, DEFINITION, int(definition.version or 1), "AT_LEAST_ONCE", {},
                                         wid, now + 3600, plan)  # fmt: skip
            inst = WorkflowInstance.create(created)
            repo.create(inst, int(now * 1000), schedule=False)
            inst.record(ev.WorkflowStarted(wid, now, DEFINITION, wid))
            events = inst.take_pending()
            requests.append(CommitRequest(inst, events, 1, WorkflowStatus.CREATED, int(now * 1000), sched="keep"))
        for result in asyncio.run(_commit_all(repo, requests)):
            if isinstance(result, Exception):
                raise result
    return time.perf_counter() - t0


async def _commit_all(repo: Any, requests: list[CommitRequest]) -> list[Any]:
    """The batch's commits in flight together on the asyncio path (a fresh connection per batch)."""
    try:
        return list(await asyncio.gather(*(repo.commit_async(r) for r in requests)))
    finally:
        repo.close_async()


def timed(http: httpx.Client, method: str, url: str, n: int, **kwargs: Any) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = http.request(method, url, **kwargs)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:300]}")
    return out


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(quantile(samples, 0.5), 2), "p99_ms": round(quantile(samples, 0.99), 2),
            "max_ms": round(max(samples), 2), "n": len(samples)}  # fmt: skip


def run(stored: int, requests: int, redis_url: str | None = None) -> dict[str, Any]:
    server = None
    home = Path(tempfile.mkdtemp(prefix="wes-api-bench-"))
    if redis_url is None:
        server = EmbeddedRedis(home / "redis", port=free_port())
        redis_url = server.start().url
    settings = EngineSettings(redis_url=redis_url, key_prefix=f"apibench{uuid.uuid4().hex[:8]}", home=home)
    client = EngineClient(settings)
    key = f"bench-{uuid.uuid4().hex}"
    api = ApiComponent(settings, port=free_port(), log_file=home / "api.log", env={
        "WES_API_KEYS": f"operator:{key}", "WES_API_RATE_LIMIT_PER_SECOND": "1000000",
        "WES_API_RATE_LIMIT_BURST": "1000000",
    })  # fmt: skip
    try:
        client.apply_definition({"name": DEFINITION, "steps": [
            {"id": "a", "action": HANDLER, "compensation": {"type": "UNDO", "action": HANDLER}}]})  # fmt: skip
        seed_s = seed_running(client, stored)
        api.start()
        http = httpx.Client(base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"},
                            timeout=10.0, trust_env=False)  # fmt: skip
        body = {"definition": DEFINITION, "input": {"order_id": "bench"}}
        list_params = {"status": "RUNNING", "limit": 50}
        timed(http, "POST", "/workflows", WARMUP, json=body)
        timed(http, "GET", "/workflows", WARMUP, params=list_params)
        starts = timed(http, "POST", "/workflows", requests, json=body)
        lists = timed(http, "GET", "/workflows", requests, params=list_params)
        page = http.get("/workflows", params={"status": "RUNNING", "limit": 500}).json()
        for _ in range(stored // 1000):
            page = http.get("/workflows", params={"status": "RUNNING", "limit": 500, "cursor": page["next_cursor"]})
            page = page.json()
        deep = timed(http, "GET", "/workflows", requests // 4, params={**list_params, "cursor": page["next_cursor"]})
        counts = client.counts()
        s, li, d = summary(starts), summary(lists), summary(deep)
        result = {
            "stored_running": counts["RUNNING"],
            "stored_total": sum(counts.values()),
            "seed_s": round(seed_s, 1),
            "start": s,
            "list_running_first_page": li,
            "list_running_mid_cursor": d,
            "start_p99_ms": s["p99_ms"],
            "list_p99_ms": li["p99_ms"],
        }
        result["bars_met"] = all(result[k] <= bar for k, bar in BARS_MS.items())
        return result
    finally:
        api.stop()
        relay_logs(home / "api.log")
        if server is not None:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)
        else:
            conn = client.engine.stores.client
            for batch in _batched(conn.scan_iter(f"{settings.key_prefix}*", count=1000), 1000):
                conn.unlink(*batch)


def _batched(items, n: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.stored, args.requests, os.environ.get("REDIS_URL"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("start", "list_running_first_page", "list_running_mid_cursor"):
            r = result[name]
            print(f"{name:<26} p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms   max {r['max_ms']:7.2f} ms")
        print(f"stored RUNNING {result['stored_running']:,} (total {result['stored_total']:,}), seeded in "
              f"{result['seed_s']} s; bars (start p99 <= 20 ms, list p99 <= 50 ms) met: {result['bars_met']}")  # fmt: skip
    return 0 if result["bars_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
