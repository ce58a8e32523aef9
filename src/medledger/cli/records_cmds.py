"""Record administration: ``keys rotate`` and ``patient erase``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from medledger.cli.output import err_console, handle_errors, out_console

DEFAULT_DATA = Path("medledger-data")
Data = Annotated[Path, typer.Option("--data", "-d", help="Ledger data directory.")]

keys_app = typer.Typer(help="Record encryption keys.", no_args_is_help=True, rich_markup_mode=None)
patient_app = typer.Typer(help="Patient data rights.", no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(patient_app, name="patient")


@keys_app.command("rotate")
@handle_errors
def rotate(data: Data = DEFAULT_DATA) -> None:
    """Re-wrap every patient data key under a new master key (payloads are not re-encrypted).

    Safe to interrupt: run it again to finish. The old key is kept as
    master.key.retired-<kid> because existing backups still need it.
    """
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    with LedgerNode.open(data) as node:
        service = RecordService.open(node)
        with Progress(
            TextColumn("re-wrapping"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} keys"),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        ) as bar:
            task = bar.add_task("rotate", total=None)
            old, new, count = service.rotate_master(
                progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    out_console.print(f"master key {old} -> {new}: {count:,} data keys re-wrapped", markup=False)


@patient_app.command("erase")
@handle_errors
def erase(
    patient_id: Annotated[str, typer.Argument(help="The Patient resource id on this node.")],
    reason: Annotated[
        str, typer.Option(help="Why (an administrative reference; never patient data).")
    ],
    force: Annotated[
        bool, typer.Option(help="Erase before the retention floor (recorded on the ledger).")
    ] = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """Crypto-shred a patient: destroy their data key; reads then answer 410 Gone.

    Refused within 5 years of the patient's last update unless --force is given.
    """
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    with LedgerNode.open(data) as node:
        when, index = RecordService.open(node).erase_patient(patient_id, reason, force=force)
    out_console.print(
        f"Patient/{patient_id} erased at {when}; ledger entry {index}"
        + (" (forced before the retention floor)" if force else ""),
        markup=False,
    )
