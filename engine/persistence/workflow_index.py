"""The workflow indexes: sorted sets of ids by status, definition, correlation id, attention and all,
each scored by creation time (attention: by when it began). Lists and counts read them, never a scan."""

from __future__ import annotations

import redis

from engine.domain.status import WorkflowStatus
from engine.persistence.keys import Keys

LIST_ORDERS = ("newest", "oldest")
"""Orders of ``list_ids``: by the index's score (creation time), newest or oldest first."""


class WorkflowIndex:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.r = client
        self.keys = keys

    def count_by_status(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for status in WorkflowStatus:
            pipe.zcard(self.keys.by_status(status.value))
        return {s.value: int(n) for s, n in zip(WorkflowStatus, pipe.execute(), strict=True)}

    def list_ids(
        self,
        *,
        status: WorkflowStatus | None = None,
        definition: str | None = None,
        correlation_id: str | None = None,
        requires_attention: bool = False,
        limit: int = 50,
        cursor: str | None = None,
        created_after_ms: int | None = None,
        created_before_ms: int | None = None,
        order: str = "newest",
    ) -> tuple[list[str], str | None]:
        """Newest first (``order="oldest"``: oldest first) from one index; ``cursor`` is
        ``<created ms>:<id>`` of the last item seen, to be passed back with the same order.
        ``created_after_ms`` / ``created_before_ms`` bound the creation time (inclusive / exclusive;
        the attention index is scored by when attention began, not by creation). Ties on the score
        go by id (descending newest first, ascending oldest first), so pages never overlap."""
        if order not in LIST_ORDERS:
            raise ValueError(f"order must be one of {', '.join(LIST_ORDERS)}, got {order!r}")
        ascending = order == "oldest"
        k = self.keys
        if requires_attention:
            index = k.attention
        elif correlation_id is not None:
            index = k.by_correlation(correlation_id)
        elif status is not None:
            index = k.by_status(status.value)
        elif definition is not None:
            index = k.by_definition(definition)
        else:
            index = k.all_workflows
        filters = {"status": status, "definition": definition, "correlation_id": correlation_id}
        for name, used in (
            ("correlation_id", k.by_correlation),
            ("status", k.by_status),
            ("definition", k.by_definition),
        ):
            if filters[name] is not None and index == used(filters[name]):
                filters[name] = None  # the index already holds only these
        max_score: str = "+inf" if created_before_ms is None else f"({created_before_ms}"
        min_score: str = "-inf" if created_after_ms is None else str(created_after_ms)
        after_id: str | None = None
        after_score: int | None = None
        if cursor:
            score, _, after_id = cursor.partition(":")
            try:
                after_score = int(score)
            except ValueError:
                raise ValueError(f"invalid cursor {cursor!r}: expected <created ms>:<id>") from None
            # the cursor moves one bound; the other filter bound stays (a stale cursor never widens it)
            if ascending and (created_after_ms is None or after_score >= created_after_ms):
                min_score = str(after_score)
            elif not ascending and (created_before_ms is None or after_score < created_before_ms):
                max_score = str(after_score)
        out: list[str] = []
        last_score: float | None = None
        fetch = max(limit * 2, 50)
        offset = 0
        while len(out) < limit:
            if ascending:
                rows = self.r.zrangebyscore(index, min_score, max_score, start=offset, num=fetch, withscores=True)
            else:
                rows = self.r.zrevrangebyscore(index, max_score, min_score, start=offset, num=fetch, withscores=True)
            if not rows:
                break
            offset += len(rows)
            candidates = []
            for wid, score in rows:
                if (
                    after_id is not None
                    and int(score) == after_score
                    and (wid <= after_id if ascending else wid >= after_id)
                ):
                    continue
                candidates.append((wid, score))
            matched = self._filter(candidates, filters, index)
            for wid, score in matched:
                out.append(wid)
                last_score = score
                if len(out) == limit:
                    break
            if len(rows) < fetch:
                break
        next_cursor = f"{int(last_score)}:{out[-1]}" if out and len(out) == limit and last_score is not None else None
        return out, next_cursor

    def _filter(self, rows: list[tuple[str, float]], filters: dict, index: str) -> list[tuple[str, float]]:
        checks = {name: value for name, value in filters.items() if value is not None}
        if not checks or not rows:
            return rows
        pipe = self.r.pipeline(transaction=False)
        for wid, _ in rows:
            pipe.hmget(self.keys.state(wid), "status", "type", "corr")
        out = []
        for (wid, score), (status, wtype, corr) in zip(rows, pipe.execute(), strict=True):
            if status is None:
                continue
            if "status" in checks and status != checks["status"].value:
                continue
            if "definition" in checks and wtype != checks["definition"]:
                continue
            if "correlation_id" in checks and corr != checks["correlation_id"]:
                continue
            out.append((wid, score))
        return out
