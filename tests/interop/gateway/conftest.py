"""Fixtures for the gateway tests: a running hub (test_referral_flow.py brings its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.gateway.server import Hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A running `medledger serve` over a fresh data directory in ``tmp_path``; stopped after."""
    running = Hub(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()
