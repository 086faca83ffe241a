"""Pipelined commits: run many claimed sagas on one connection without waiting for each round trip.

Each saga is a generator that yields a :class:`CommitRequest` and is resumed with its
:class:`CommitResult` (or has the per-saga error thrown into it: a conflict, a lost lease). Up to
``depth`` commits are in flight: while one saga's commit travels to Redis and back, the worker runs
another saga's step. A commit is still sent the moment it is ready, and a saga never proceeds before
its own commit is acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Generator, Iterable
from typing import Any

from engine.errors import LeaseLost
from engine.persistence.fastpath import ResendNeeded
from engine.persistence.workflow_repository import CommitRequest, WorkflowRepository
from engine.saga.execution import LeaseBook
from engine.stats import StatsRecorder

log = logging.getLogger(__name__)

PERSISTENCE_PROBE_EVERY = 8
"""With commits pipelined, one in this many is sent alone and timed for the persistence SLA."""

SagaRun = Generator[CommitRequest, Any, None]


class CommitPipeline:
    def __init__(self, workflows: WorkflowRepository, stats: StatsRecorder, leases: LeaseBook, depth: int = 2):
        self.workflows = workflows
        self.stats = stats
        self.leases = leases
        self.depth = max(1, depth)
        self._commits = 0

    def run(self, sagas: Iterable[tuple[str, SagaRun]]) -> None:
        """Drive every saga until each is done (or handed back)."""
        ready: deque[tuple[str, SagaRun, Any]] = deque((wid, gen, None) for wid, gen in sagas)
        inflight: deque[tuple[str, SagaRun, CommitRequest]] = deque()
        try:
            while ready or inflight:
                while ready and len(inflight) < self.depth:
                    wid, gen, value = ready.popleft()
                    request = self._resume(wid, gen, value)
                    if request is None:
                        continue
                    self._commits += 1
                    if self.depth == 1 or self._commits % PERSISTENCE_PROBE_EVERY == 0:
                        while inflight:
                            ready.append(self._receive(inflight))
                        ready.appendleft((wid, gen, self._timed_commit(request)))
                    else:
                        self.workflows.send_commit(request)
                        inflight.append((wid, gen, request))
                if inflight:
                    ready.appendleft(self._receive(inflight))
        except BaseException:
            # Replies may be left unread on the pipelined connection: it cannot be trusted any more.
            self.workflows.reset_pipeline()
            raise

    def _timed_commit(self, request: CommitRequest) -> Any:
        """A commit sent alone and timed. With other commits in flight, the time to a reply would include
        this worker's work on other sagas, which is not persistence. The timed span is the round trip
        only: encoding happens before it (a garbage collection there would be the worker's pause)."""
        prepared = self.workflows.prepare_commit(request)
        started = time.perf_counter()
        self.workflows.send_commit(request, prepared)
        while True:
            try:
                reply = self.workflows.receive_reply()
                break
            except ResendNeeded:
                self.workflows.send_commit(request, prepared)
        elapsed = time.perf_counter() - started
        self.stats.observe("state_persistence", elapsed)
        if request.events:
            # The events are appended to the workflow's stream and the global feed in this same atomic
            # commit: its round trip is their publishing time.
            self.stats.observe("event_publish", elapsed)
        return self.workflows.commit_result(request, reply)

    def _receive(self, inflight: deque) -> tuple[str, SagaRun, Any]:
        """The result of the oldest commit in flight, sent again as long as its script must be loaded."""
        while True:
            wid, gen, request = inflight[0]
            try:
                reply = self.workflows.receive_reply()
            except ResendNeeded:
                inflight.popleft()
                self.workflows.send_commit(request)
                inflight.append((wid, gen, request))
                continue
            inflight.popleft()
            return wid, gen, self.workflows.commit_result(request, reply)

    def _resume(self, wid: str, gen: SagaRun, value: Any) -> CommitRequest | None:
        """Run a saga up to its next commit; None once it is done (or fenced out)."""
        try:
            return gen.throw(value) if isinstance(value, Exception) else gen.send(value)
        except StopIteration:
            self.leases.drop(wid)
        except LeaseLost as exc:
            log.warning("%s", exc)
            self.leases.drop(wid)
        except Exception:
            self.leases.drop(wid)
            raise
        return None
