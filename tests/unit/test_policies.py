"""Retry backoff arithmetic and retryability (``engine.domain.policies.RetryPolicy``)."""

from __future__ import annotations

import random

import pytest

from engine.domain.policies import RetryPolicy, compensation_budget
from engine.domain.status import BackoffStrategy
from engine.errors import NonRetryableStepError, StepError, StepTimeout

B = BackoffStrategy


def delays(policy: RetryPolicy, n: int = 6, custom_fn=None) -> list[float]:
    return [policy.base_delay(k, custom_fn) for k in range(1, n + 1)]


# ---------------------------------------------------------------------------------------------- sequences
def test_linear_default_is_a_fixed_delay() -> None:
    assert delays(RetryPolicy(backoff=B.LINEAR, initial_delay=2.0)) == [2.0] * 6


def test_linear_with_increment() -> None:
    assert delays(RetryPolicy(backoff=B.LINEAR, initial_delay=1.0, increment=0.5)) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


def test_exponential_doubles_from_initial() -> None:
    assert delays(RetryPolicy(backoff=B.EXPONENTIAL, initial_delay=0.5)) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_exponential_is_the_default() -> None:
    assert delays(RetryPolicy(), 3) == [1.0, 2.0, 4.0]


def test_fibonacci() -> None:
    assert delays(RetryPolicy(backoff=B.FIBONACCI, initial_delay=2.0)) == [2.0, 2.0, 4.0, 6.0, 10.0, 16.0]


def test_custom_calls_the_function_with_retry_number_initial_and_max() -> None:
    calls = []

    def custom(k: int, initial: float, maximum: float) -> float:
        calls.append((k, initial, maximum))
        return initial * k * k

    policy = RetryPolicy(backoff=B.CUSTOM, initial_delay=0.5, max_delay=100.0, custom="m:f")
    assert delays(policy, 4, custom) == [0.5, 2.0, 4.5, 8.0]
    assert calls == [(1, 0.5, 100.0), (2, 0.5, 100.0), (3, 0.5, 100.0), (4, 0.5, 100.0)]


def test_custom_without_its_function_is_an_error() -> None:
    with pytest.raises(ValueError, match="CUSTOM backoff needs its registered function"):
        RetryPolicy(backoff=B.CUSTOM, custom="m:f").base_delay(1)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(backoff=B.EXPONENTIAL, initial_delay=1.0, max_delay=5.0), [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]),
        (RetryPolicy(backoff=B.FIBONACCI, initial_delay=1.0, max_delay=4.0), [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]),
        (
            RetryPolicy(backoff=B.LINEAR, initial_delay=1.0, increment=2.0, max_delay=6.0),
            [1.0, 3.0, 5.0, 6.0, 6.0, 6.0],
        ),
    ],
    ids=["exponential", "fibonacci", "linear"],
)
def test_delay_is_capped_at_max_delay(policy, expected) -> None:
    assert delays(policy) == expected


def test_custom_is_capped_and_never_negative() -> None:
    policy = RetryPolicy(backoff=B.CUSTOM, initial_delay=1.0, max_delay=10.0, custom="m:f")
    assert policy.base_delay(1, lambda k, i, m: 1e9) == 10.0
    assert policy.base_delay(1, lambda k, i, m: -3.0) == 0.0


def test_retry_number_below_one_counts_as_the_first_retry() -> None:
    assert RetryPolicy(initial_delay=3.0).base_delay(0) == 3.0


# ---------------------------------------------------------------------------------------------- jitter
def test_no_jitter_means_next_delay_is_the_base_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0)
    assert [policy.next_delay(k, random.Random(1)) for k in (1, 2, 3)] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("jitter", [0.1, 0.5, 1.0])
def test_jitter_stays_within_base_and_base_times_one_plus_jitter(jitter) -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=jitter)
    rng = random.Random(42)
    for k in range(1, 7):
        base = policy.base_delay(k)
        samples = [policy.next_delay(k, rng) for _ in range(200)]
        assert all(base <= d <= base * (1 + jitter) for d in samples)
        assert max(samples) > base * (1 + jitter * 0.9)  # the range is actually used
        assert min(samples) < base * (1 + jitter * 0.1)


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=0.5)
    assert [policy.next_delay(3, random.Random(7)) for _ in range(2)] == [policy.next_delay(3, random.Random(7))] * 2
    assert policy.next_delay(3, random.Random(7)) != policy.next_delay(3, random.Random(8))


def test_jitter_applies_after_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=2.0, jitter=0.5)
    rng = random.Random(3)
    assert all(2.0 <= policy.next_delay(10, rng) <= 3.0 for _ in range(100))


# ---------------------------------------------------------------------------------------------- retryable
def _names(exc: BaseException) -> tuple[str, tuple[str, ...], bool]:
    cls = type(exc)
    return cls.__name__, tuple(c.__name__ for c in cls.__mro__), getattr(exc, "retryable", True)


@pytest.mark.parametrize(
    ("policy", "error", "retryable"),
    [
        (RetryPolicy(), StepError("x"), True),
        (RetryPolicy(), ConnectionError("x"), True),
        (RetryPolicy(), StepTimeout("x"), True),
        (RetryPolicy(), NonRetryableStepError("x"), False),
        (RetryPolicy(), StepError("x", retryable=False), False),
        (RetryPolicy(retryable_errors=("ConnectionError",)), ConnectionError("x"), True),
        (RetryPolicy(retryable_errors=("ConnectionError",)), ValueError("x"), False),
        (RetryPolicy(retryable_errors=("OSError",)), ConnectionError("x"), True),  # matched through the MRO
        (RetryPolicy(retryable_errors=("StepError",)), StepTimeout("x"), True),
        (RetryPolicy(retryable_errors=("ConnectionError",)), StepError("x", retryable=False), False),
        (RetryPolicy(non_retryable_errors=("ValueError",)), ValueError("x"), False),
        (RetryPolicy(non_retryable_errors=("ValueError",)), KeyError("x"), True),
        (RetryPolicy(non_retryable_errors=("LookupError",)), KeyError("x"), False),
        (
            RetryPolicy(retryable_errors=("OSError",), non_retryable_errors=("ConnectionRefusedError",)),
            ConnectionRefusedError("x"),
            False,
        ),
    ],
    ids=[
        "default-step-error",
        "default-builtin",
        "default-timeout",
        "flag-class",
        "flag-instance",
        "listed",
        "not-listed",
        "listed-base-class",
        "listed-base-step-error",
        "listed-but-flagged-final",
        "non-retryable-listed",
        "non-retryable-other",
        "non-retryable-base-class",
        "non-retryable-wins",
    ],
)
def test_is_retryable(policy, error, retryable) -> None:
    assert policy.is_retryable(*_names(error)) is retryable


def test_error_type_from_the_handler_is_matched() -> None:
    policy = RetryPolicy(non_retryable_errors=("OutOfStock",))
    err = StepError("no stock", error_type="OutOfStock")
    assert policy.is_retryable(err.error_type, ("StepError", "EngineError"), err.retryable) is False


# ---------------------------------------------------------------------------------------------- dict form
def test_to_dict_from_dict_round_trip() -> None:
    policy = RetryPolicy(
        max_attempts=7,
        backoff=B.FIBONACCI,
        initial_delay=0.25,
        max_delay=30.0,
        increment=1.0,
        jitter=0.2,
        retryable_errors=("ConnectionError",),
        non_retryable_errors=("ValueError",),
        custom=None,
    )
    assert RetryPolicy.from_dict(policy.to_dict(), "retry") == policy


def test_from_dict_accepts_backoff_strategy_alias_and_lowercase() -> None:
    assert RetryPolicy.from_dict({"backoff_strategy": "fibonacci"}, "retry").backoff is B.FIBONACCI


def test_from_dict_fills_from_the_base_policy() -> None:
    base = RetryPolicy(max_attempts=9, initial_delay=2.0)
    assert RetryPolicy.from_dict({"jitter": 0.1}, "retry", base=base) == RetryPolicy(
        max_attempts=9, initial_delay=2.0, jitter=0.1
    )


# ---------------------------------------------------------------------------------------------- budget
@pytest.mark.parametrize(("forward", "budget"), [(0.0, 1.0), (0.2, 1.0), (10.0, 20.0), (-5.0, 1.0), (90.0, 180.0)])
def test_compensation_budget_is_twice_the_forward_time_with_a_floor(forward, budget) -> None:
    assert compensation_budget(forward) == budget


@pytest.mark.parametrize(("forward", "floor", "budget"), [(0.2, 6.0, 6.0), (10.0, 6.0, 20.0), (2.9, 6.0, 6.0)])
def test_the_engine_raises_the_floor_to_cover_a_recovery(forward, floor, budget) -> None:
    assert compensation_budget(forward, floor) == budget


# ---------------------------------------------------------------------------------------------- bugs
@pytest.mark.parametrize(("backoff", "retry_number"), [(B.EXPONENTIAL, 1100), (B.FIBONACCI, 1600)])
def test_large_retry_numbers_are_capped_not_overflowing(backoff, retry_number) -> None:
    policy = RetryPolicy(max_attempts=5000, backoff=backoff, initial_delay=1.0, max_delay=60.0)
    assert policy.base_delay(retry_number) == 60.0
