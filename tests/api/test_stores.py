"""The API's side of the one door to Redis: the shared Redis-URL parser, the one event-stream decoder,
and the async stores the API reads and writes through (``engine.ApiStores``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine import ApiStores, ConfigurationError, EngineClient
from engine.domain.events import WorkflowCancelled
from engine.persistence.codec import encode_event
from engine.persistence.connection import SentinelTarget, connect, connect_async, parse_sentinel_url
from engine.persistence.event_stream import decode_entry
from tests.conftest import fast_settings


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://s1:26380/mymaster", SentinelTarget((("s1", 26380),), "mymaster")),
        ("redis+sentinel://s1,s2:26381/m/3", SentinelTarget((("s1", 26379), ("s2", 26381)), "m", 3)),
        ("redis+sentinel://:p%40ss@s1:1/m", SentinelTarget((("s1", 1),), "m", 0, "p@ss")),
        ("redis+sentinel://user:pw@s1/m/", SentinelTarget((("s1", 26379),), "m", 0, "pw")),
    ],
)
def test_sentinel_urls(url: str, expected: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == expected


@pytest.mark.unit
@pytest.mark.parametrize("url", ["redis+sentinel://s1:26379", "redis+sentinel://s1:26379/", "redis+sentinel://s1:x/m"])
def test_a_bad_sentinel_url_is_a_configuration_error_for_both_clients(url: str) -> None:
    settings = fast_settings("redis://unused:6379")
    with pytest.raises(ConfigurationError, match="bad REDIS_URL"):
        connect(settings, url=url)
    with pytest.raises(ConfigurationError, match="bad REDIS_URL"):
        connect_async(settings, url)


@pytest.mark.unit
def test_one_decoder_for_workflow_streams_and_the_feed() -> None:
    event = WorkflowCancelled(workflow_id="w1", at=12.5, reason="operator", by="k1")
    raw = encode_event(event).decode()
    own = decode_entry("1-0", {"v": "7", "t": "WorkflowCancelled", "d": raw}, "w1")
    assert (own.id, own.workflow_id, own.version, own.type, own.at) == ("1-0", "w1", 7, "WorkflowCancelled", 12.5)
    assert own.event() == event
    in_feed = decode_entry("2-0", {"wf": "w1", "v": "7", "t": "WorkflowCancelled", "d": raw})
    assert in_feed.as_dict() == {**own.as_dict(), "id": "2-0"}
    breaker = decode_entry("3-0", {"wf": "", "v": "0", "t": "BreakerOpened", "d": '{"service": "pay", "at": 1}'})
    assert (breaker.workflow_id, breaker.at, breaker.data["service"]) == (None, 1.0, "pay")
    assert decode_entry("4-0", {"t": "X", "d": "not json"}).data == {"raw": "not json"}
    assert decode_entry("5-0", {"t": "X", "d": "[1]"}).data == {"value": [1]}
    assert decode_entry("6-0", {}).as_dict() == {
        "id": "6-0", "workflow_id": None, "version": 0, "type": "", "at": None, "data": {},
    }  # fmt: skip


@pytest.fixture
def api_stores(redis_url) -> tuple[EngineClient, ApiStores]:
    client = EngineClient(fast_settings(redis_url))
    return client, ApiStores(client.engine.stores)


def test_the_first_key_is_stored_once(api_stores) -> None:
    _, stores = api_stores
    assert stores.api_keys.put_first("a1", "{}")
    assert not stores.api_keys.put_first("a2", "{}")
    assert stores.api_keys.records() == {"a1": "{}"}
    assert stores.api_keys.remove("a1") == "{}"
    assert stores.api_keys.remove("a1") is None


def test_async_stores(api_stores) -> None:
    _, stores = api_stores

    async def scenario() -> None:
        try:
            stores.api_keys.put("k1", "record")
            assert await stores.api_keys.find("k1") == "record"
            assert await stores.api_keys.find("nope") is None
            key_id = uuid.uuid4().hex
            assert await stores.rate_limits.take(key_id, 0.001, 2) == 0
            assert await stores.rate_limits.take(key_id, 0.001, 2) == 0
            assert 0 < await stores.rate_limits.take(key_id, 0.001, 2) <= 1000
            first = await stores.audit.append({"action": "a"}, 1000)
            second = await stores.audit.append({"action": "b"}, 1000)
            assert stores.audit.before(None, 10) == [(second, {"action": "b"}), (first, {"action": "a"})]
            assert stores.audit.before(second, 10) == [(first, {"action": "a"})]
            assert stores.audit.before("0-0", 10) == []
            assert stores.audit.size() == 2
            assert await stores.ping()
            assert not await stores.feed.workflow_exists("nope")
        finally:
            await stores.aclose()

    asyncio.run(scenario())
