"""Retry delays: exponential backoff with full jitter.

After the n-th failed attempt the next one waits a uniformly random time in
``[0, min(cap, base · 2^(n−1))]`` ("full jitter", as in the AWS architecture blog's analysis of
backoff): the ceiling doubles with every failure up to ``cap``, and the randomness spreads the
retries of many deliveries that failed together (a receiver restart) instead of having them
all hit the receiver again at the same instant. The expected delay is half the ceiling, so it
grows with every attempt until the cap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from medledger.errors import InputError

__all__ = ["ceiling", "next_delay"]

_MAX_EXPONENT = 1000  # 2**1000 overflows no float: beyond it the cap has long been reached


def ceiling(attempt: int, *, base: float = 2.0, cap: float = 600.0) -> float:
    """Return the largest delay after ``attempt`` failures: ``min(cap, base · 2^(attempt−1))``."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InputError(
            "backoff attempt counts failures from 1",
            field="attempt",
            value=attempt,
            expected="an integer ≥ 1",
        )
    if not (math.isfinite(base) and base > 0):
        raise InputError("backoff base must be positive", field="base", value=base, expected="> 0")
    if not (math.isfinite(cap) and cap >= 0):
        raise InputError("backoff cap must be ≥ 0", field="cap", value=cap, expected="≥ 0")
    return min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))


def next_delay(
    attempt: int,
    *,
    base: float = 2.0,
    cap: float = 600.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Return the delay in seconds before the attempt that follows ``attempt`` failures.

    ``jitter`` returns a number in [0, 1] (values outside are clamped); pass a constant for a
    deterministic schedule. Requires ``attempt ≥ 1``, ``base > 0``, ``cap ≥ 0``.
    """
    top = ceiling(attempt, base=base, cap=cap)
    u = float(jitter())
    if not math.isfinite(u):
        raise InputError(
            "backoff jitter must return a number", field="jitter", value=u, expected="0 ≤ u ≤ 1"
        )
    return top * min(1.0, max(0.0, u))
