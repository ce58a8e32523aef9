"""Generate docs/cli.md from ``medledger --help`` (run: ``make docs``).

tests/cli/test_docs.py regenerates it and fails if the committed file differs.
"""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from medledger.cli.main import app

HEADER = """# CLI reference

Generated from `medledger --help` by `make docs` (`python -m medledger.cli.docgen`); a test fails
when this file and the code drift apart. Do not edit by hand.

Exit codes for every command: `0` ok, `1` checked and found invalid or tampered, `2` usage or
input error (nothing was changed), `3` the environment failed (database unavailable, disk full).
"""


def command_paths(root: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return every command path of a Typer app, groups before their commands."""
    paths: list[tuple[str, ...]] = []
    for cmd in root.registered_commands:
        name = cmd.name or (cmd.callback.__name__.replace("_", "-") if cmd.callback else "")
        paths.append((*prefix, name))
    for group in root.registered_groups:
        sub = group.typer_instance
        name = group.name or (sub.info.name if sub and isinstance(sub.info.name, str) else "")
        paths.append((*prefix, name))
        if sub is not None:
            paths += command_paths(sub, (*prefix, name))
    return paths


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise RuntimeError(f"`medledger {' '.join(path)} --help` failed: {result.output}")
    return result.output.rstrip()


def render() -> str:
    """Return the whole CLI reference as Markdown."""
    parts = [HEADER]
    for path in [(), *sorted(command_paths(app))]:
        name = " ".join(("medledger", *path))
        parts.append(f"\n## `{name}`\n\n```text\n{help_text(path)}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
