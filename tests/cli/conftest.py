"""CLI fixtures: run `medledger` in-process and keep the result's exit code and output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from medledger.cli.main import app

Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    runner = CliRunner()

    def invoke(*args: str | Path, input: str | bytes | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def ledger_dir(tmp_path: Path, run: Run) -> Path:
    data = tmp_path / "data"
    result = run("init", "--data", data, "--node", "central", "--block-max-wait-ms", "0")
    assert result.exit_code == 0, result.output
    return data
