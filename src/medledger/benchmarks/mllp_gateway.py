"""``medledger bench mllp``: the gateway's HL7 v2 path under load, with durable ACKs.

Starts ``medledger serve --mllp-port`` on a temporary data directory (or ``--db``), seeds
``orders`` ORM^O01 requisitions from the member hospital, then drives ORU^R01 results from
the central hospital's LIS over MLLP (``benchmarks.mllp``): each result names one of the
seeded orders and has its own filler number, so every message is stored as a new
DiagnosticReport and Observation linked to its order, anchored on the ledger, journalled and
audited before its ACK. Phases: 1 connection, N connections (closed loop), and 1,000
connections held at once. The peer is the same MLLP transport answering a canned AA.

Afterwards the node's journal is reconciled: every message answered AA must be stored.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medledger.errors import EnvironmentFailure

__all__ = ["gateway_result", "run"]

ORDERS = 200
MEMBER, CENTRAL = "hosp-member-east", "hosp-central"
MEMBER_FACILITY, CENTRAL_FACILITY = "示例区中医院", "示例市第一人民医院"


def order(index: int) -> bytes:
    """ORM^O01 number ``index`` from the member hospital (no performer: no translation)."""
    n = f"{index:06d}"
    return (
        f"MSH|^~\\&|HIS|{MEMBER_FACILITY}|||20261120080000||ORM^O01^ORM_O01|BORM{n}|P|2.5|||AL|NE"
        "||UNICODE UTF-8\r"
        f"PID|1||BMZ{n}^^^^PI||示例^患者{index}||19800101|F\r"
        f"ORC|NW|BSQ{n}|||||^^^^^R||20261120075500\r"
        + "|".join(["OBR", "1", f"BSQ{n}", "", "JY0001^空腹血糖^L"] + [""] * 19 + ["LAB"])
        + "\r"
    ).encode()


def gateway_result(index: int) -> bytes:
    """ORU^R01 number ``index`` from the central LIS for seeded order ``index % ORDERS``."""
    n, o = f"{index:09d}", f"{index % ORDERS:06d}"
    return (
        f"MSH|^~\\&|LIS|{CENTRAL_FACILITY}|HIS|{MEMBER_FACILITY}|20261120093000||ORU^R01^ORU_R01|"
        f"BORU{n}|P|2.5|||AL|NE||UNICODE UTF-8\r"
        f"PID|1||BMZ{o}^^^^PI||示例^患者{index % ORDERS}||19800101|F\r"
        f"ORC|RE|BSQ{o}|BJY{n}||||||||||||||||||{MEMBER_FACILITY}\r"
        f"OBR|1|BSQ{o}|BJY{n}|GLU^空腹血糖^L|||20261120080000|||||||||||||||20261120092900"
        "||LAB|F\r"
        "OBX|1|NM|GLU^葡萄糖^L||5.6|mmol/L|3.9-6.1|N|||F\r"
    ).encode()


def run(
    *,
    db: str | None,
    seconds: float,
    connections: int,
    hold_connections: int,
    hold_seconds: float,
    peer: bool,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Start the gateway, seed the orders, run the phases, reconcile; JSON-ready result."""
    from medledger.benchmarks.mllp import bench
    from medledger.benchmarks.processes import stop_process

    with tempfile.TemporaryDirectory(prefix="medledger-bench-mllp-") as tmp:
        data = Path(tmp) / "d"
        (Path(tmp) / "interop.yaml").write_text(
            f"facilities:\n  {MEMBER_FACILITY}: {MEMBER}\n  {CENTRAL_FACILITY}: {CENTRAL}\n",
            encoding="utf-8",
        )
        port, mllp = _free_port(), _free_port()
        cmd = [sys.executable, "-m", "medledger.cli.main", "serve", "--data", str(data)]
        cmd += ["--port", str(port), "--mllp-port", str(mllp), "--node", CENTRAL]
        cmd += ["--interop-config", str(Path(tmp) / "interop.yaml")]
        if db is not None:
            cmd += ["--db", db]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait(proc, mllp)
            progress(f"seeding {ORDERS} orders")
            asyncio.run(_seed(mllp))
            result = bench(
                "127.0.0.1",
                mllp,
                messages=gateway_result,
                seconds=seconds,
                connections=connections,
                hold_connections=hold_connections,
                hold_seconds=hold_seconds,
                peer=peer,
                progress=progress,
            )
        finally:
            stop_process(proc, 30)
        result["reconciliation"] = _reconcile(data)
    result.update(benchmark="mllp", db="postgresql" if db else "sqlite", orders=ORDERS)
    return result


async def _seed(port: int) -> None:
    from medledger.benchmarks.mllp import ack_code
    from medledger.interop.mllp.client import MllpClient

    async with MllpClient("127.0.0.1", port, timeout=30) as client:
        acks = await client.send_all(
            [order(i) for i in range(ORDERS)], is_ack_ok=lambda a: ack_code(a) == "AA"
        )
    if len(acks) != ORDERS:
        raise EnvironmentFailure("seeding the benchmark's orders failed")


def _reconcile(data: Path) -> dict[str, Any]:
    """Journal totals after the run: every AA'd message stored, none lost or unfinished."""
    from medledger.interop.journal import Journal
    from medledger.interop.reconcile import reconcile
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    with LedgerNode.open(data) as node:
        service = RecordService.open(node, recover=False)
        journal = Journal(node.store.engine, service.keyring, node.suite)
        totals = reconcile(journal, None, since="2000-01-01", until="2999-12-31")["totals"]
    keys = ("distinct", "stored", "held", "rejected", "quarantined", "lost", "unfinished")
    return {k: totals[k] for k in keys}


def _wait(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise EnvironmentFailure(f"serve exited ({proc.returncode}): {err[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise EnvironmentFailure("the MLLP listener did not come up")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
