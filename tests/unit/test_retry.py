"""RetryPolicy: exponential backoff with equal jitter, a cap, and a maximum number of attempts."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenancy.provisioning.retry import RetryPolicy


def test_ceilings_grow_base_times_factor_to_the_attempt_minus_one() -> None:
    policy = RetryPolicy(base_seconds=1.0, factor=2.0, cap_seconds=300.0)
    assert [policy.ceiling(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_ceilings_stop_at_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1.0, factor=2.0, cap_seconds=300.0)
    assert policy.ceiling(10) == 300.0  # 512 capped
    assert policy.ceiling(11) == 300.0
    assert policy.ceiling(50) == 300.0


def test_ceiling_with_another_base_and_factor() -> None:
    policy = RetryPolicy(base_seconds=0.5, factor=3.0, cap_seconds=100.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == pytest.approx([0.5, 1.5, 4.5, 13.5, 40.5, 100.0])


def test_attempt_zero_or_below_is_treated_as_the_first() -> None:
    policy = RetryPolicy(base_seconds=2.0)
    assert policy.ceiling(0) == policy.ceiling(1) == 2.0


@given(
    base=st.floats(min_value=0.001, max_value=10),
    factor=st.floats(min_value=1.0, max_value=5),
    cap=st.floats(min_value=0.001, max_value=1000),
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_lies_between_half_the_ceiling_and_the_ceiling(
    base: float, factor: float, cap: float, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(base_seconds=base, factor=factor, cap_seconds=cap, random=random.Random(seed))
    ceiling = policy.ceiling(attempt)
    assert 0 < ceiling <= cap
    delay = policy.delay(attempt)
    assert ceiling / 2 <= delay <= ceiling


def test_delays_lower_bounds_strictly_grow_until_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1.0, factor=2.0, cap_seconds=300.0, random=random.Random(7))
    lower_bounds = [policy.ceiling(n) / 2 for n in range(1, 15)]
    below_cap = [bound for bound in lower_bounds if bound < 150.0]
    assert len(below_cap) == 9
    assert all(later > earlier for earlier, later in itertools.pairwise(below_cap))
    assert lower_bounds[9:] == [150.0] * 5
    # Each delay is never sooner than the previous attempt's ceiling allows: the spread moves up.
    for attempt in range(1, 9):
        for _ in range(50):
            assert policy.delay(attempt + 1) >= policy.ceiling(attempt)


@pytest.mark.parametrize("attempt", [10**3, 10**6, 10**18])
def test_a_huge_attempt_number_returns_the_cap_without_overflow(attempt: int) -> None:
    policy = RetryPolicy(base_seconds=1.0, factor=2.0, cap_seconds=300.0)
    assert policy.ceiling(attempt) == 300.0
    assert 150.0 <= policy.delay(attempt) <= 300.0


def test_a_huge_attempt_with_a_tiny_base_still_returns_the_cap() -> None:
    # base * factor**64 is below the cap, so the early exit does not apply.
    policy = RetryPolicy(base_seconds=1e-30, factor=2.0, cap_seconds=300.0)
    assert policy.ceiling(10**6) == 300.0


def test_a_zero_base_never_waits_even_after_many_attempts() -> None:
    # TENANCY_RETRY_BASE_SECONDS=0 is allowed (ge=0) and the test settings use it.
    policy = RetryPolicy(base_seconds=0.0, factor=2.0, cap_seconds=300.0)
    assert policy.ceiling(3) == 0.0
    assert policy.ceiling(2000) == 0.0
    assert policy.delay(2000) == 0.0


def test_factor_one_is_a_constant_delay() -> None:
    policy = RetryPolicy(base_seconds=3.0, factor=1.0, cap_seconds=300.0)
    assert {policy.ceiling(n) for n in (1, 2, 50, 10**9)} == {3.0}


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_exhausted_at_max_attempts_and_not_before(max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    assert policy.exhausted(max_attempts) is True
    assert policy.exhausted(max_attempts + 1) is True
    assert policy.exhausted(max_attempts - 1) is False


def test_a_seeded_random_gives_reproducible_delays() -> None:
    first = RetryPolicy(random=random.Random(1234))
    second = RetryPolicy(random=random.Random(1234))
    delays = [first.delay(n) for n in range(1, 12)]
    assert delays == [second.delay(n) for n in range(1, 12)]
    other = RetryPolicy(random=random.Random(4321))
    assert delays != [other.delay(n) for n in range(1, 12)]
    # Jitter actually spreads: the delays are not simply the lower bounds.
    assert any(not math.isclose(delay, first.ceiling(n) / 2) for n, delay in enumerate(delays, start=1))
