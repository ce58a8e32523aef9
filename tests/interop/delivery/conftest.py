"""Fixtures for the delivery tests: a settable clock (engines: tests/interop/conftest.py)."""

from __future__ import annotations

import pytest

T0 = 1_795_400_000.0  # 2026-11-23 10:13:20 UTC+8


class Clock:
    """A clock the test sets by hand (the queue takes its clock as a parameter)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A clock starting at T0."""
    return Clock()
