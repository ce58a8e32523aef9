"""Backoff: full-jitter exponential delays stay in [0, cap] and grow in expectation."""

from __future__ import annotations

import random
from statistics import fmean

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.delivery.backoff import ceiling, next_delay

ATTEMPTS = st.integers(min_value=1, max_value=10_000)
BASES = st.floats(min_value=1e-3, max_value=100)
CAPS = st.floats(min_value=0, max_value=10_000)


@given(attempt=ATTEMPTS, base=BASES, cap=CAPS, seed=st.integers(0, 2**32))
def test_delay_is_never_negative_nor_above_cap(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """0 ≤ next_delay ≤ cap for any attempt, base, cap and random draw."""
    rng = random.Random(seed)
    d = next_delay(attempt, base=base, cap=cap, jitter=rng.random)
    assert 0 <= d <= cap


@given(attempt=ATTEMPTS, base=BASES, cap=CAPS, u=st.floats(min_value=0, max_value=1))
def test_delay_grows_with_attempts_for_every_draw(
    attempt: int, base: float, cap: float, u: float
) -> None:
    """For a fixed jitter draw, the delay never shrinks as attempts grow (so neither does E)."""
    now = next_delay(attempt, base=base, cap=cap, jitter=lambda: u)
    later = next_delay(attempt + 1, base=base, cap=cap, jitter=lambda: u)
    assert later >= now


def test_mean_delay_doubles_until_the_cap() -> None:
    """Sample means with the real random jitter roughly double per attempt, then flatten at cap."""
    rng = random.Random(20261123)
    means = [fmean(next_delay(a, base=1.0, cap=20.0, jitter=rng.random) for _ in range(4000))
             for a in range(1, 8)]  # fmt: skip
    for a, mean in enumerate(means, start=1):
        assert mean == pytest.approx(min(20.0, 2 ** (a - 1)) / 2, rel=0.08)
    assert means[0] < means[1] < means[2] < means[3] < means[4]


def test_ceiling_values_and_huge_attempts() -> None:
    """Ceilings are base·2^(n−1) up to the cap; a huge attempt count does not overflow."""
    assert [ceiling(a, base=2.0, cap=600.0) for a in range(1, 6)] == [2, 4, 8, 16, 32]
    assert ceiling(10**9) == 600.0
    assert next_delay(10**9, jitter=lambda: 1.0) == 600.0
    assert next_delay(3, base=0.01, cap=1.0, jitter=lambda: 7.0) == pytest.approx(0.04)  # clamped


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"attempt": 1, "base": 0.0}, "base"),
        ({"attempt": 1, "cap": -1.0}, "cap"),
        ({"attempt": 1, "jitter": lambda: float("nan")}, "jitter"),
    ],
)
def test_bad_arguments_are_input_errors(kwargs: dict[str, object], field: str) -> None:
    """Attempt < 1, a non-positive base, a negative cap or a NaN jitter raise InputError."""
    with pytest.raises(InputError) as info:
        next_delay(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
