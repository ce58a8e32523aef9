"""docs/cli.md is generated from --help and must match it."""

from __future__ import annotations

from pathlib import Path

from medledger.cli.docgen import command_paths, render
from medledger.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_matches_help() -> None:
    """The committed CLI reference equals what --help prints today (run `make docs`)."""
    assert DOC.read_text(encoding="utf-8") == render(), "docs/cli.md is stale: run `make docs`"


def test_every_command_is_documented() -> None:
    """Every command and subcommand has a section in docs/cli.md."""
    text = DOC.read_text(encoding="utf-8")
    paths = command_paths(app)
    assert {"init", "append", "cert", "verify", "audit", "log"} <= {p[0] for p in paths}
    for path in paths:
        assert f"## `medledger {' '.join(path)}`" in text, path
