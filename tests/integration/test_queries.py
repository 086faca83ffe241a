"""Queries over real Redis indexes: correlation ids, status, definition with cursor pages, attention."""

from __future__ import annotations

from tests.integration.support import define, start, step


def ids(page) -> list[str]:
    return [i["workflow_id"] for i in page.items]


def all_pages(client, limit: int, **filters) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = client.list(limit=limit, cursor=cursor, **filters)
        pages.append(ids(page))
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_find_by_correlation_id(client):
    define(client, "orders", [step("a")])
    first = start(client, "orders", correlation_id="order-7")
    second = start(client, "orders", correlation_id="order-7")
    other = start(client, "orders", correlation_id="order-8")
    plain = start(client, "orders")

    found = client.find_by_correlation_id("order-7")
    assert sorted(i["workflow_id"] for i in found) == sorted([first, second])
    assert all(i["correlation_id"] == "order-7" for i in found)
    assert [i["workflow_id"] for i in client.find_by_correlation_id("order-8")] == [other]
    # Without one, a workflow is its own correlation id.
    assert [i["workflow_id"] for i in client.find_by_correlation_id(plain)] == [plain]
    assert client.find_by_correlation_id("order-9") == []
    assert sorted(ids(client.list(correlation_id="order-7"))) == sorted([first, second])


def test_list_by_definition_pages_with_a_cursor(client):
    define(client, "paged", [step("a")])
    define(client, "other", [step("a")])
    mine = [start(client, "paged", {"n": n}) for n in range(7)]
    theirs = [start(client, "other") for _ in range(2)]

    pages = all_pages(client, 3, definition="paged")

    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [wid for p in pages for wid in p]
    assert sorted(flat) == sorted(mine), "every item exactly once, and only this definition's"
    # Newest first by creation millisecond (the index score); ties in one millisecond go by id.
    created = {i["workflow_id"]: int(i["time_constraints"]["created_at"] * 1000) for i in client.list(limit=100).items}
    assert flat == sorted(flat, key=lambda w: (created[w], w), reverse=True), "not newest first"
    # Filters combine: CREATED and of this definition, paged two at a time.
    combined = all_pages(client, 2, status="CREATED", definition="paged")
    assert [len(p) for p in combined] == [2, 2, 2, 1]
    assert sorted(w for p in combined for w in p) == sorted(mine)
    assert sorted(ids(client.list(definition="other"))) == sorted(theirs)
    assert len(ids(client.list(limit=100))) == 9


def test_list_oldest_first_pages_with_a_cursor(client):
    define(client, "aged", [step("a")])
    mine = [start(client, "aged", {"n": n}) for n in range(7)]

    pages = all_pages(client, 3, definition="aged", order="oldest")

    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [wid for p in pages for wid in p]
    created = {i["workflow_id"]: int(i["time_constraints"]["created_at"] * 1000) for i in client.list(limit=100).items}
    assert flat == sorted(mine, key=lambda w: (created[w], w)), "oldest first by creation ms, ties by id"
    assert [w for p in all_pages(client, 3, definition="aged") for w in p] == list(reversed(flat))
    # Through the status index with a filter, one at a time, and with a time window.
    assert [w for p in all_pages(client, 1, status="CREATED", definition="aged", order="oldest") for w in p] == flat
    cut = created[flat[3]]
    after = client.list(definition="aged", order="oldest", created_after=(cut + 0.5) / 1000, limit=100)
    assert ids(after) == [w for w in flat if created[w] >= cut]


def test_list_by_status_and_requires_attention(client, workers):
    define(client, "statuses", [step("a"), step("b")])
    waiting = start(client, "statuses")
    client.cancel(waiting)
    workers(1)
    done = [start(client, "statuses") for _ in range(2)]
    clean = start(client, "statuses", {"plan": {"b": {"fail": "final"}}})
    broken = start(client, "statuses", {"plan": {"a": {"undo_fail": "always"}, "b": {"fail": "final"}}})
    for wid in [*done, clean, broken]:
        client.wait(wid, 20)

    assert sorted(ids(client.list(status="COMPLETED"))) == sorted(done)
    assert sorted(ids(client.list(status="compensated"))) == sorted([clean, broken])
    assert ids(client.list(status="CANCELLED")) == [waiting]
    for gone in ("CREATED", "RUNNING", "COMPENSATING", "FAILED"):
        assert ids(client.list(status=gone)) == [], f"stale entries in the {gone} index"
    assert ids(client.list(requires_attention=True)) == [broken]
    assert client.counts()["COMPLETED"] == 2


def test_start_with_an_idempotency_key_returns_the_first_instance(client):
    define(client, "idem", [step("a")])

    first = client.start("idem", {"n": 1}, idempotency_key="req-1")
    again = client.start("idem", {"n": 2}, idempotency_key="req-1")
    other = client.start("idem", {"n": 3}, idempotency_key="req-2")

    assert first["created"] is True
    assert again == {**first, "created": False}
    assert other["workflow_id"] != first["workflow_id"]
    assert client.get(first["workflow_id"])["input"] == {"n": 1}
    assert len(ids(client.list(definition="idem"))) == 2
