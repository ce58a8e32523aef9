"""Ledger commands: init, append, cert, consistency, audit (with access and cert), log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from medledger.cli.output import err_console, handle_errors, out_console, print_json, read_bytes
from medledger.crypto.canonical import parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.registry import SUITES
from medledger.crypto.trust import load_trust_bundle
from medledger.errors import AuditFailed, InvalidEntry
from medledger.ledger.audit import Auditor
from medledger.ledger.config import HEAD_FILE, TRUST_FILE
from medledger.ledger.node import LedgerNode

DEFAULT_DATA = Path("medledger-data")
Data = Annotated[
    Path, typer.Option("--data", "-d", help="Ledger data directory.", show_default=True)
]
APPEND_CHUNK = 10_000


audit_app = typer.Typer(invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("append")(append)
    app.command("cert")(cert)
    app.command("consistency")(consistency)
    audit_app.callback(invoke_without_command=True)(audit)
    audit_app.command("access")(audit_access)
    audit_app.command("cert")(audit_cert)
    app.add_typer(audit_app, name="audit")
    app.command("log")(log)


@handle_errors
def init(
    data: Data = DEFAULT_DATA,
    suite: Annotated[
        str, typer.Option(help=f"Crypto suite, fixed for the chain: {', '.join(SUITES)}.")
    ] = "intl-v1",
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default: SQLite file in DIR), e.g. "
            "postgresql+psycopg://user@127.0.0.1:5432/medledger."
        ),
    ] = None,
    node: Annotated[str | None, typer.Option(help="Node name (default: host name).")] = None,
    max_entry_bytes: Annotated[
        int, typer.Option(min=256, help="Largest accepted entry, canonical bytes.")
    ] = 64 * 1024,
    block_max_entries: Annotated[
        int, typer.Option(min=1, help="Cut a block after this many entries.")
    ] = 2000,
    block_max_wait_ms: Annotated[
        float, typer.Option(min=0, help="Cut a block this long after its first entry.")
    ] = 10.0,
) -> None:
    """Create a ledger: node signing key (mode 0600), trust bundle keys.json, genesis block."""
    with LedgerNode.init(
        data,
        suite=suite,
        db=db,
        node=node,
        max_entry_bytes=max_entry_bytes,
        block_max_entries=block_max_entries,
        block_max_wait_ms=block_max_wait_ms,
    ) as ledger:
        out_console.print(f"created ledger in {data}", markup=False)
        out_console.print(f"  chain   {ledger.config.chain}", markup=False)
        out_console.print(f"  suite   {ledger.suite.name}", markup=False)
        out_console.print(f"  node    {ledger.config.node} (key {ledger.key_id})", markup=False)
        out_console.print(f"  trust   {data / TRUST_FILE}  <- give this to verifiers", markup=False)


@handle_errors
def append(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE...", help="Files of JSON entries, one per line (default: standard input)."
        ),
    ] = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Append JSON entries (one object per line); print one receipt per entry once durable.

    Every line is validated before anything is written: one bad line writes nothing.
    Receipts come in input order: {"index": …, "entry_hash": …, "height": …}.
    """
    sources = [str(p) for p in files] if files else ["-"]
    objs = []
    labels: list[str] = []
    for src in sources:
        raw = read_bytes(src)
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            where = f"{'stdin' if src == '-' else src}:{lineno}"
            objs.append(parse_json_object(line, field=where, error=InvalidEntry))
            labels.append(where)
    with LedgerNode.open(data) as ledger:
        encoded = ledger.encode(objs, labels)
        futures = [
            ledger.submit(encoded[i : i + APPEND_CHUNK])
            for i in range(0, len(encoded), APPEND_CHUNK)
        ]
        out = sys.stdout
        for fut in futures:
            receipts = fut.result()
            out.write(
                "".join(
                    f'{{"index":{r.index},"entry_hash":"{r.entry_hash}","height":{r.height}}}\n'
                    for r in receipts
                )
            )
            out.flush()


@handle_errors
def cert(
    index: Annotated[int, typer.Argument(help="Leaf index of the entry.")],
    data: Data = DEFAULT_DATA,
    salt: Annotated[
        str | None, typer.Option(help="Payload salt (hex) to include for the data holder.")
    ] = None,
) -> None:
    """Print the medledger-cert/1 certificate of entry INDEX."""
    payload_salt = None if salt is None else from_hex(salt, field="salt")
    with LedgerNode.open(data) as ledger:
        print_json(ledger.certificate(index, payload_salt=payload_salt))


@handle_errors
def consistency(
    from_size: Annotated[int, typer.Option("--from", help="Older tree size (a signed head).")],
    to_size: Annotated[
        int | None, typer.Option("--to", help="Newer tree size (default: newest head).")
    ] = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Print a consistency proof between two signed heads (see verify-consistency)."""
    with LedgerNode.open(data) as ledger:
        print_json(ledger.consistency(from_size, to_size))


@handle_errors
def audit(
    ctx: typer.Context,
    data: Data = DEFAULT_DATA,
    trust: Annotated[
        Path | None, typer.Option(help="Trust bundle (default: DIR/keys.json).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    records: Annotated[
        bool,
        typer.Option(
            "--records",
            help="Also decrypt every record version and check it against its ledger entry.",
        ),
    ] = False,
) -> None:
    """Recompute every leaf, node, header hash, prev link and signature; name each problem.

    Also checks the audit trail: every anchored batch of audit events still hashes to the root
    on the chain, and no audit event or batch row was altered or deleted. Exit 0 if the store
    is intact, 1 if anything is tampered, missing or out of order. The subcommands list audit
    events and print their certificates.
    """
    if ctx.invoked_subcommand is not None:
        return
    from medledger.access.audit_check import audit_trail

    with LedgerNode.open(data) as ledger:
        bundle = load_trust_bundle(trust) if trust else ledger.trust
        with Progress(
            TextColumn("auditing"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} entries"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=json_out or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task("audit", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            with ledger.reader() as reader:
                report = Auditor(
                    reader, ledger.suite, bundle, head_file=data / HEAD_FILE, progress=progress
                ).run()
                if records:
                    from medledger.records.audit import audit_records
                    from medledger.records.service import RecordService

                    rec = audit_records(RecordService.open(ledger, recover=False), reader)
                    report.findings.extend(rec.findings)
                    if not json_out:
                        out_console.print(
                            f"records: {rec.versions:,} versions, {rec.decrypted:,} decrypted and "
                            f"matched, {rec.erased:,} erased, {rec.pending:,} pending",
                            markup=False,
                        )
                trail = audit_trail(ledger.store.engine, reader, ledger.suite)
                report.findings.extend(trail.findings)
                if not json_out:
                    out_console.print(
                        f"audit trail: {trail.events:,} events, {trail.batches:,} batches "
                        f"anchored, {trail.pending:,} pending, {trail.unbatched:,} events not "
                        "anchored yet",
                        markup=False,
                    )
    if json_out:
        print_json(report.to_json())
    else:
        out_console.print(
            f"audited {report.entries:,} entries, {report.nodes:,} nodes, {report.blocks:,} "
            f"blocks in {report.seconds:.2f}s",
            markup=False,
        )
        for f in report.findings:
            out_console.print(f"  TAMPERED {f['kind']} {f['at']}: {f['problem']}", markup=False)
        if report.ok:
            out_console.print("OK: the store is intact", markup=False)
    if not report.ok:
        raise AuditFailed(report.findings)


@handle_errors
def audit_access(
    data: Data = DEFAULT_DATA,
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Only break-glass (emergency) accesses.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="From this date or instant on, e.g. 2026-11-22 (China time).", metavar="ISO"
        ),
    ] = None,
    principal: Annotated[
        str | None, typer.Option(help="Only this user or client id.", metavar="ID")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Show at most this many.")] = 100,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the AuditEvents as JSON.")
    ] = False,
) -> None:
    """List audit events, newest first: who, for which institution, what, outcome."""
    from medledger.access.audit_trail import AuditTrail

    with LedgerNode.open(data) as ledger:
        trail = AuditTrail(ledger.store.engine, ledger, node=ledger.config.node)
        events = trail.list_events(
            since=since, principal=principal, break_glass=break_glass, limit=limit
        )
    if json_out:
        print_json(events)
        return
    # One line per event (recorded, who@institution, interaction, outcome, entities, purpose),
    # so an auditor can grep and sort the list.
    for e in events:
        out_console.print("  ".join(x for x in _event_row(e) if x), markup=False)
    out_console.print(f"{len(events):,} event(s)", markup=False)


def _event_row(event: dict[str, Any]) -> tuple[str, ...]:
    agents = event.get("agent", [])
    who = agents[0]["who"]["identifier"]["value"] if agents else ""
    inst = next(
        (
            a["who"]["identifier"]["value"]
            for a in agents[1:]
            if a["who"]["identifier"]["system"] == "urn:medledger:institution"
        ),
        "",
    )
    refs = [
        x["what"].get("reference") or x["what"].get("identifier", {}).get("value", "")
        for x in event.get("entity", [])
        if "what" in x
    ]
    shown = ", ".join(refs[:2]) + (f" (+{len(refs) - 2})" if len(refs) > 2 else "")
    purpose = event.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code", "")
    reasons = [x["valueString"] for x in event.get("extension", []) if "break-glass" in x["url"]]
    if reasons:
        purpose = f"{purpose}: {reasons[0]}"
    return (
        event.get("recorded", ""),
        f"{who}@{inst}" if inst else who,
        event["subtype"][0]["code"],
        f"{event.get('outcome', '')} {event.get('outcomeDesc', '')}".strip(),
        shown,
        purpose,
    )


@handle_errors
def audit_cert(
    event_id: Annotated[str, typer.Argument(help="The audit event's id.")],
    data: Data = DEFAULT_DATA,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the certificate to FILE.", metavar="FILE")
    ] = None,
) -> None:
    """Print the medledger-audit-cert/1 certificate of an anchored audit event."""
    from medledger.access.audit_trail import AuditTrail

    with LedgerNode.open(data) as ledger:
        trail = AuditTrail(ledger.store.engine, ledger, node=ledger.config.node)
        document = trail.certificate(event_id)
    if out is None:
        print_json(document)
        return
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    err_console.print(f"wrote {out}", markup=False)


@handle_errors
def log(
    data: Data = DEFAULT_DATA,
    limit: Annotated[int, typer.Option(min=1, help="Show this many newest blocks.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print headers as JSON lines.")] = False,
) -> None:
    """Show the newest signed head and the latest blocks."""
    with LedgerNode.open(data) as ledger, ledger.reader() as reader:
        latest = reader.latest_block()
        start = 0 if latest is None else max(0, latest.height - limit + 1)
        headers = list(ledger.blocks(reader, start))
    if json_out:
        for h in headers:
            print_json(h.to_json(), indent=None)
        return
    head = headers[-1]
    out_console.print(
        f"chain {head.chain}  suite {ledger.suite.name}  head: height {head.height}, "
        f"tree size {head.tree_size:,}, root {head.root.hex()}",
        markup=False,
    )
    table = Table("height", "tree size", "time (UTC)", "root", "signed by")
    for h in reversed(headers):
        table.add_row(
            str(h.height),
            f"{h.tree_size:,}",
            h.ts,
            h.root.hex()[:16] + "…",
            ", ".join(s.key_id for s in h.signatures),
        )
    out_console.print(table)
