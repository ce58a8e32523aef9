"""``medledger``: create a ledger, append entries, issue and verify certificates, audit."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medledger import __version__
from medledger.cli import (
    admin_cmds,
    bench,
    interop_cmds,
    ledger_cmds,
    records_cmds,
    serve_cmd,
    verify_cmds,
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100}

app = typer.Typer(
    name="medledger",
    help="MedLedger: a verifiable clinical-data ledger for hospital groups.\n\n"
    "Exit codes: 0 ok, 1 checked and found invalid or tampered, 2 usage or input error, "
    "3 the environment failed (database unavailable, disk full).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"medledger {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """MedLedger command line."""


ledger_cmds.register(app)
verify_cmds.register(app)
serve_cmd.register(app)
records_cmds.register(app)
admin_cmds.register(app)
interop_cmds.register(app)
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
