"""``engine.domain.services.circuit_state``: the one Python copy of the breaker's effective-state rule
(the ServiceRegistry's breaker view and the metrics collector use it; BREAKER_BEGIN keeps a Lua copy)."""

from __future__ import annotations

import pytest

from engine.domain.services import circuit_state

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("state", "open_until", "forced", "expected"),
    [
        ("CLOSED", 0, "", "CLOSED"),
        ("OPEN", NOW + 1, "", "OPEN"),  # still in its open period
        ("OPEN", NOW, "", "HALF_OPEN"),  # open period over: the next call is a trial
        ("OPEN", 0, "", "HALF_OPEN"),
        ("HALF_OPEN", NOW + 1, "", "HALF_OPEN"),
        ("CLOSED", 0, "OPEN", "OPEN"),  # forced OPEN refuses every call
        ("HALF_OPEN", 0, "OPEN", "OPEN"),
        ("OPEN", NOW + 1, "CLOSED", "OPEN"),  # forced CLOSED admits calls; the state shown stays the breaker's
        ("OPEN", NOW - 1, "CLOSED", "HALF_OPEN"),
    ],
)
def test_effective_state(state: str, open_until: int, forced: str, expected: str) -> None:
    assert circuit_state(state, open_until, NOW, forced) == expected


def test_without_the_force_the_breaker_s_own_state() -> None:
    assert circuit_state("CLOSED", 0, NOW) == "CLOSED"
    assert circuit_state("OPEN", NOW - 1, NOW) == "HALF_OPEN"
    assert type(circuit_state("OPEN", NOW - 1, NOW)) is str
