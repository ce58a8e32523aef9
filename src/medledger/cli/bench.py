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


@app.command("api")
@handle_errors
def api(
    url: Annotated[
        str | None,
        typer.Option(
            help="Drive this running server (default: start `medledger serve` on a temp dir)."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL for the started server (default: its SQLite file)."),
    ] = None,
    connections: Annotated[
        int, typer.Option(min=1, help="Concurrent persistent connections.")
    ] = 1000,
    rate: Annotated[
        float, typer.Option(min=1, help="Open-loop arrival rate, requests/s.")
    ] = 1300.0,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each load phase.")] = 20.0,
    bundles: Annotated[int, typer.Option(min=1, help="Transaction Bundles to ingest.")] = 60,
    bundle_concurrency: Annotated[int, typer.Option(min=1, help="Bundles in flight.")] = 4,
    saturate: Annotated[
        bool, typer.Option(help="Also run the closed-loop saturation phase.")
    ] = True,
    peer: Annotated[bool, typer.Option(help="Run the FastAPI+dict peer on the same load.")] = True,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MEDLEDGER_TOKEN",
            help="Access token for --url (an integration client's); a started server gets "
            "its own benchmark account.",
        ),
    ] = None,
) -> None:
    """Mixed FHIR workload over real HTTP: req/s, p50/p95/p99, errors, bundle ingest; peer ratio.

    Every request carries a bearer token and leaves an audit event, as in production; the
    peer has neither."""
    from medledger.benchmarks import api as api_bench

    result = api_bench.run(
        url=url,
        db=db,
        connections=connections,
        rate=rate,
        seconds=seconds,
        bundles=bundles,
        bundle_concurrency=bundle_concurrency,
        saturate=saturate,
        peer=peer,
        token=token,
        progress=_stage,
    )
    print_json(result)


@app.command("mllp")
@handle_errors
def mllp(
    db: Annotated[
        str | None,
        typer.Option(help="Database URL for the started server (default: its SQLite file)."),
    ] = None,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each load phase.")] = 10.0,
    connections: Annotated[
        int, typer.Option(min=1, help="Connections of the concurrent phase.")
    ] = 100,
    hold: Annotated[int, typer.Option(min=1, help="Connections held open at once.")] = 1000,
    hold_seconds: Annotated[float, typer.Option(min=1, help="How long they are held.")] = 10.0,
    peer: Annotated[bool, typer.Option(help="Run the canned-ACK MLLP peer too.")] = True,
) -> None:
    """ORU^R01 over MLLP with durable ACKs: messages/s and ACK latency over 1 and N
    connections, 1,000 connections held at once; peer ratio; reconciliation afterwards."""
    from medledger.benchmarks import mllp_gateway

    result = mllp_gateway.run(
        db=db,
        seconds=seconds,
        connections=connections,
        hold_connections=hold,
        hold_seconds=hold_seconds,
        peer=peer,
        progress=_stage,
    )
    print_json(result)


def _stage(stage: str) -> None:
    """Print a benchmark's stage to stderr (stdout carries only its JSON)."""
    err_console.print(f"· {stage}", markup=False)
