"""``medledger interop reconcile | worklist | retry | redeliver | send``.

``reconcile`` and ``worklist`` read the data directory (also while ``serve`` runs);
``retry`` and ``redeliver`` change it and need the writer lock (stop ``serve``, or use
``/api/v1/interop``); ``send`` is an MLLP client for any HL7 v2 listener.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medledger.cli.output import handle_errors, out_console, print_json
from medledger.errors import InputError

DEFAULT_DATA = Path("medledger-data")
Data = Annotated[Path, typer.Option("--data", "-d", help="Ledger data directory.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Config = Annotated[
    Path | None,
    typer.Option("--interop-config", help="Gateway configuration (default: DIR/interop.yaml)."),
]


def register(app: typer.Typer) -> None:
    """Add the gateway commands to the ``interop`` group."""
    app.command("reconcile")(reconcile)
    app.command("worklist")(worklist)
    app.command("retry")(retry)
    app.command("redeliver")(redeliver)
    app.command("send")(send)


def _open(data: Path, config: Path | None, *, write: bool):  # type: ignore[no-untyped-def]
    from medledger.interop.config import CONFIG_FILE, load_gateway_config
    from medledger.interop.runtime import Interop
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    node = LedgerNode.open(data)
    try:
        if write:
            node.acquire_writer()
        service = RecordService.open(node, recover=write)
        cfg = load_gateway_config(config or data / CONFIG_FILE)
        return node, Interop.open(service, cfg)
    except BaseException:
        node.close()
        raise


@handle_errors
def reconcile(
    since: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD or 7d (the last 7 days).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (default today).")] = None,
    interface: Annotated[str | None, typer.Option(help="Only this interface: mllp, http…")] = None,
    data: Data = DEFAULT_DATA,
    config: Config = None,
    as_json: Json = False,
) -> None:
    """Per interface and day: received, stored, acknowledged, forwarded and delivered,
    duplicates suppressed, quarantined and mismatches, then every gap item by item.

    Exits 1 if anything was lost (ACKed but not stored) or a message is unfinished."""
    node, interop = _open(data, config, write=False)
    with node:
        report = interop.report(since=since, until=until, interface=interface)
    if as_json:
        print_json(report)
    else:
        table = Table("day", "interface", "received", "dup", "stored", "held", "quar.", "rej.",
                      "acked", "mismatch", "lost", title="messages")  # fmt: skip
        for r in report["messages"]:
            table.add_row(*[str(r[k]) for k in ("day", "interface", "received", "duplicates",
                          "stored", "held", "quarantined", "rejected", "acknowledged",
                          "mismatches", "lost")])  # fmt: skip
        out_console.print(table)
        pushes = Table("day", "channel", "forwarded", "delivered", "pending", "dead", title="push")
        for p in report["deliveries"]:
            pushes.add_row(*[str(p[k]) for k in ("day", "channel", "forwarded", "delivered",
                                                 "pending", "dead")])  # fmt: skip
        out_console.print(pushes)
        for gap in report["gaps"]:
            out_console.print(
                f"gap: {gap['kind']} {gap['id']} {gap.get('control_id') or gap.get('ref')} "
                f"{gap['status']}: {gap.get('reason') or ''}",
                markup=False,
            )
    totals = report["totals"]
    if totals["lost"] or totals["unfinished"]:
        raise typer.Exit(1)


@handle_errors
def worklist(
    status: Annotated[str, typer.Option(help="Comma-separated statuses.")] = "held,quarantined",
    data: Data = DEFAULT_DATA,
    config: Config = None,
    as_json: Json = False,
) -> None:
    """Messages not stored: held (waiting for a code mapping or for their order) or
    quarantined (a mismatch or bad content), with their reasons."""
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    node, interop = _open(data, config, write=False)
    with node:
        found = interop.gateway.journal.by_status(*wanted)
    if as_json:
        print_json([m.to_json() for m in found])
        return
    table = Table("id", "day", "from", "type", "control id", "status", "reason")
    for m in found:
        table.add_row(str(m.id), m.day, m.institution, m.message_type, m.control_id, m.status,
                      m.reason or "")  # fmt: skip
    out_console.print(table)


@handle_errors
def retry(
    message_id: Annotated[int, typer.Argument(help="Journal id from `interop worklist`.")],
    data: Data = DEFAULT_DATA,
    config: Config = None,
) -> None:
    """Process a held or quarantined message again (e.g. after fixing a mapping)."""
    node, interop = _open(data, config, write=True)
    with node:
        message = interop.gateway.journal.get(message_id)
        outcome = interop.gateway.retry(message)
    out_console.print(f"message {message_id}: {outcome.status} ({outcome.ack_code})", markup=False)
    if outcome.status != "stored":
        raise typer.Exit(1)


@handle_errors
def redeliver(
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids (see reconcile).")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead-lettered push.")] = False,
    data: Data = DEFAULT_DATA,
    config: Config = None,
) -> None:
    """Put dead-lettered pushes back in the queue; the running server delivers them."""
    if not ids and not all_dead:
        raise InputError("say which deliveries", field="ids", expected="IDS… or --all")
    node, interop = _open(data, config, write=True)
    with node:
        count = interop.queue.redeliver(ids or None, all_dead=all_dead)
    out_console.print(f"{count} deliveries queued again", markup=False)


@handle_errors
def send(
    files: Annotated[list[Path], typer.Argument(help="HL7 v2 message files, sent in order.")],
    to: Annotated[str, typer.Option("--to", help="HOST:PORT of the MLLP listener.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK.")] = 10.0,
) -> None:
    """Send messages over MLLP and print each ACK code; resend after a lost ACK.

    Exits 1 if any message was not accepted (AE or AR)."""
    from medledger.interop.config import parse_gateway
    from medledger.interop.hl7.ack import parse_ack
    from medledger.interop.mllp.client import MllpClient

    host, port = parse_gateway({"mllp": {"listen": to}}).listen or ("", 0)
    messages = []
    for f in files:
        try:
            messages.append(f.read_bytes())
        except OSError as exc:
            raise InputError(
                f"cannot read {f}", field="files", value=str(f), expected="a readable file"
            ) from exc

    async def go() -> list[bytes]:
        async with MllpClient(host, port, timeout=timeout) as client:
            # Any ACK ends a message's attempts (an AE is reported, not resent); a lost ACK
            # (connection dropped, timeout) resends it: the gateway answers a redelivery as
            # before without processing it again.
            return await client.send_all(messages, is_ack_ok=lambda _ack: True)

    acks = asyncio.run(go())
    bad = 0
    for f, raw in zip(files, acks, strict=True):
        ack = parse_ack(raw)
        bad += ack.code != "AA"
        text = f" {ack.error_location or ''} {ack.error_text or ''}" if ack.code != "AA" else ""
        out_console.print(f"{f.name}: {ack.code} {ack.control_id}{text}", markup=False)
    if bad:
        raise typer.Exit(1)
