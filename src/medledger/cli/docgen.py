"""Generate docs/cli.md from ``medledger --help`` (run: ``make docs``).

tests/cli/test_docs.py regenerates it and fails if the committed file differs.
"""

from __future__ import annotations

import click
import typer

from medledger.cli.main import app

HEADER = """# CLI reference

Generated from `medledger --help` by `make docs` (`python -m medledger.cli.docgen`); a test fails
when this file and the code drift apart. Do not edit by hand.

Exit codes for every command: `0` ok, `1` checked and found invalid or tampered, `2` usage or
input error (nothing was changed), `3` the environment failed (database unavailable, disk full).
"""


def _walk(cmd: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    ctx = click.Context(cmd, info_name=path[-1], parent=parent, max_content_width=100,
                        terminal_width=100)
    name = " ".join(path)
    out = [f"\n## `{name}`\n", "```text", cmd.get_help(ctx).rstrip(), "```"]
    if isinstance(cmd, click.Group):
        for sub in sorted(cmd.list_commands(ctx)):
            child = cmd.get_command(ctx, sub)
            if child is not None and not child.hidden:
                out += _walk(child, [*path, sub], ctx)
    return out


def render() -> str:
    """Return the whole CLI reference as Markdown."""
    root = typer.main.get_command(app)
    return HEADER + "\n".join(_walk(root, ["medledger"], None)) + "\n"


if __name__ == "__main__":
    print(render(), end="")
