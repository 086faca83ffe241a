"""The RQ side of dispatch: the queue that carries dispatch jobs, and enqueueing one."""

from __future__ import annotations

import redis
from rq import Queue

DISPATCH_FUNC = "engine.worker.tasks.dispatch"


class DispatchQueue:
    """RQ's queue of dispatch jobs, on its own connection (RQ stores bytes: no response decoding)."""

    def __init__(self, connection: redis.Redis, name: str):
        self.connection = connection
        self.queue = Queue(name, connection=connection, serializer="json")

    def request(self) -> None:
        # Dispatch jobs bound their own running time, so RQ's alarm-based timeout is off (-1); results
        # are worthless (result_ttl 0); failures are kept a day for diagnosis, not RQ's default year.
        self.queue.enqueue(
            DISPATCH_FUNC,
            job_timeout=-1,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description="wes dispatch",
        )

    def __len__(self) -> int:
        return len(self.queue)
