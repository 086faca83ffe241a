"""The workflow state machine (``engine.domain.status``) against a table written out from PRODUCT.md + the seed."""

from __future__ import annotations

import itertools

import pytest

from engine.domain.status import WorkflowStatus, can_transition, check_transition, is_terminal
from engine.errors import IllegalTransition

S = WorkflowStatus

# Written out here, independently of engine.domain.status.TRANSITIONS: the seed's diagram plus PRODUCT.md
# (cancel of RUNNING/PAUSED compensates, the deadline runs while PAUSED, an operator may re-open a
# COMPENSATED saga to retry its failed compensations).
EXPECTED: dict[WorkflowStatus, set[WorkflowStatus]] = {
    S.CREATED: {S.RUNNING, S.CANCELLED},
    S.RUNNING: {S.COMPLETED, S.PAUSED, S.FAILED, S.TIMEOUT, S.COMPENSATING},
    S.PAUSED: {S.RUNNING, S.TIMEOUT, S.COMPENSATING},
    S.FAILED: {S.COMPENSATING},
    S.TIMEOUT: {S.COMPENSATING},
    S.COMPENSATING: {S.COMPENSATED},
    S.COMPENSATED: {S.COMPENSATING},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
}
ALL_PAIRS = list(itertools.product(WorkflowStatus, WorkflowStatus))
LEGAL = [(c, t) for c, t in ALL_PAIRS if t in EXPECTED[c]]
ILLEGAL = [(c, t) for c, t in ALL_PAIRS if t not in EXPECTED[c]]


def _id(pair: tuple[WorkflowStatus, WorkflowStatus]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_expected_table_names_every_status() -> None:
    assert set(EXPECTED) == set(WorkflowStatus)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_id)
def test_can_transition_matches_the_table(pair) -> None:
    current, target = pair
    assert can_transition(current, target) is (target in EXPECTED[current])


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_check_transition_accepts_legal_pairs(pair) -> None:
    check_transition(*pair)  # no exception


@pytest.mark.parametrize("pair", ILLEGAL, ids=_id)
def test_check_transition_refuses_illegal_pairs_naming_both_states(pair) -> None:
    current, target = pair
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, target)
    message = str(info.value)
    assert current.value in message
    assert target.value in message
    assert (info.value.current, info.value.target) == (current.value, target.value)


def test_check_transition_keeps_the_detail_in_the_message() -> None:
    with pytest.raises(IllegalTransition, match="because the saga already completed"):
        check_transition(S.COMPLETED, S.RUNNING, "because the saga already completed")


@pytest.mark.parametrize("status", list(WorkflowStatus), ids=str)
def test_is_terminal_exactly_for_completed_compensated_cancelled(status) -> None:
    assert is_terminal(status) is (status in {S.COMPLETED, S.COMPENSATED, S.CANCELLED})


def test_statuses_are_exactly_the_seeds_nine() -> None:
    assert {s.value for s in WorkflowStatus} == {
        "CREATED",
        "RUNNING",
        "PAUSED",
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "COMPENSATING",
        "COMPENSATED",
        "CANCELLED",
    }
