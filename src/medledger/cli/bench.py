"""``medledger bench …``: benchmarks that print JSON (numbers go in docs/benchmarks.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from medledger.benchmarks import ledger as ledger_bench
from medledger.cli.output import err_console, handle_errors, print_json

app = typer.Typer(
    help="Benchmarks; each prints one JSON object.", no_args_is_help=True, rich_markup_mode=None
)


@app.command("ledger")
@handle_errors
def ledger(
    entries: Annotated[int, typer.Option(min=1, help="How many entries to append.")] = 100_000,
    suite: Annotated[str, typer.Option(help="Crypto suite.")] = "intl-v1",
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: a temporary SQLite file).")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Proofs to generate and verify.")] = 20_000,
    peer: Annotated[bool, typer.Option(help="Run pymerkle on the same leaves.")] = True,
) -> None:
    """Durable appends/s, proofs/s, verifications/s, audit entries/s, peak RSS; pymerkle peer."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = ledger_bench.run(
            entries, suite=suite, db=db, samples=samples, peer=peer, progress=progress
        )
    print_json(result)
