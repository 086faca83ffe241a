"""The RQ side of dispatch: the queue that carries dispatch jobs, and enqueueing one."""

from __future__ import annotations

import redis
from rq import Queue

DISPATCH_FUNC = "engine.saga.tasks.dispatch"


def dispatch_queue(rq_client: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=rq_client, serializer="json")


def enqueue_dispatch(queue: Queue) -> None:
    # Dispatch jobs bound their own running time, so RQ's alarm-based timeout is off (-1); results
    # are worthless (result_ttl 0); failures are kept a day for diagnosis, not RQ's default year.
    queue.enqueue(
        DISPATCH_FUNC,
        job_timeout=-1,
        result_ttl=0,
        failure_ttl=24 * 3600,
        description="wes dispatch",
    )
