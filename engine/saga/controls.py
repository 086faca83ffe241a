"""Operator controls as a use case: load the saga, ask the pure command, commit, wake a worker.

A control never takes the saga's lease: it commits against the stored version, and a worker holding
the saga sees the change at its next commit (a conflict) and decides again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.domain.commands import Command
from engine.errors import ConcurrencyConflict
from engine.persistence.workflow_repository import WorkflowRepository

CONTROL_RETRIES = 20


class Controls:
    def __init__(
        self,
        workflows: WorkflowRepository,
        request_dispatch: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ):
        self.workflows = workflows
        self.request_dispatch = request_dispatch
        self.clock = clock

    def apply(self, wid: str, command: Command) -> dict[str, Any]:
        """Apply ``command`` to the stored saga; retried while workers commit concurrently. Returns the
        saga's new snapshot. Raises IllegalTransition (refused), WorkflowNotFound, ConcurrencyConflict."""
        for _ in range(CONTROL_RETRIES):
            stored = self.workflows.load(wid)
            inst = stored.instance
            old = inst.status
            now = self.clock()
            for e in command(inst, now):
                inst.record(e)
            events = inst.take_pending()
            try:
                res = self.workflows.commit(
                    inst,
                    events,
                    expected_version=stored.version,
                    old_status=old,
                    now_ms=int(now * 1000),
                    sched="del" if inst.is_terminal else "wake",
                )
            except ConcurrencyConflict:
                time.sleep(0.001)
                continue
            if res.enqueue:
                self.request_dispatch()
            return inst.to_dict()
        raise ConcurrencyConflict(f"workflow {wid} kept changing; control action not applied")
