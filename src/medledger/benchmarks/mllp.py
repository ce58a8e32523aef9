"""``bench mllp``: closed-loop MLLP load and a 1,000-connection hold, against a transport peer.

Phases, each run against the target and against :class:`PeerServer` (the same MLLP server code
with a handler that parses nothing and answers a canned AA ACK at once, i.e. the floor of the
transport on this machine); the ratio isolates what the gateway's handler costs:

1. one connection, closed loop: every message is sent as soon as the previous ACK arrived;
2. ``connections`` persistent connections (default 100), closed loop;
3. hold: ``hold_connections`` (default 1,000) connections opened and kept open, one message on
   each, all in flight at once; after ``hold_seconds`` a second message on each proves they
   were all still usable.

Processes: the load generator never shares an event loop with the server under test; it runs in
a ``spawn``-ed child (``run`` and ``hold`` block until it reports), so ``messages`` must be
picklable (a module-level function such as :func:`sample_message`). The peer is a subprocess,
``python -m medledger.benchmarks.mllp --port N``. Every process raises its open-files soft limit
to the hard limit: 1,000 connections take 2,000 descriptors with both ends on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from medledger.benchmarks.http_load import percentiles
from medledger.benchmarks.processes import stop_process
from medledger.errors import EnvironmentFailure, InputError
from medledger.interop.mllp.client import MllpClient
from medledger.interop.mllp.runtime import loop_name, raise_open_files_limit
from medledger.interop.mllp.runtime import run as run_loop
from medledger.interop.mllp.server import MllpServer, Peer

__all__ = [
    "PEER_ACK",
    "PeerServer",
    "ack_code",
    "bench",
    "hold",
    "hold_async",
    "load_async",
    "run",
    "sample_message",
]

Messages = Callable[[int], bytes]
Progress = Callable[[str], None]

PEER_ACK = (
    b"MSH|^~\\&|MEDLEDGER|hosp-central|LIS|hosp-member-east|20261120093001||ACK^R01^ACK|"
    b"PEER0001|P|2.5\rMSA|AA|PEER0001\r"
)


def sample_message(index: int) -> bytes:
    """Return ORU^R01 number ``index``: a fasting glucose result from 示例区中医院 (fictitious
    patient), UTF-8, with the unique control id ``MLB<index>``."""
    n = f"{index:09d}"
    return (
        "MSH|^~\\&|LIS|hosp-member-east|MEDLEDGER|hosp-central|20261120093000||ORU^R01^ORU_R01|"
        f"MLB{n}|P|2.5|||AL|NE||UNICODE UTF-8\r"
        f"PID|1||MZ{n}^^^hosp-member-east^MR||示例^患者{index % 100}||19800101|F\r"
        f"OBR|1|SQ{n}|JY{n}|GLU^空腹血糖^L|||20261120080000|||||||||||||||20261120092900||LAB|F\r"
        "OBX|1|NM|GLU^葡萄糖^L||5.6|mmol/L|3.9-6.1|N|||F\r"
    ).encode()


def ack_code(ack: bytes) -> str | None:
    """Return MSA-1 of an ACK (``AA``, ``AE``, ``AR``, …), or None without an MSA segment.

    Minimal on purpose: the field separator is MSH-1 (``|`` when there is no MSH) and segments
    end in CR (LF tolerated).
    """
    sep = ack[3:4] if ack.startswith(b"MSH") and len(ack) > 3 else b"|"
    for segment in re.split(rb"[\r\n]+", ack):
        if segment.startswith(b"MSA" + sep):
            return segment.split(sep)[1].decode("ascii", "replace")
    return None


class PeerServer(MllpServer):
    """The transport's floor: :class:`MllpServer` answering :data:`PEER_ACK` to every block."""

    def __init__(self, **options: Any) -> None:
        super().__init__(_canned_ack, **options)


async def _canned_ack(message: bytes, peer: Peer) -> bytes:
    return PEER_ACK


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    non_aa: int = 0

    def ack(self, latency: float, ack: bytes) -> None:
        self.latencies.append(latency)
        if ack_code(ack) != "AA":
            self.non_aa += 1

    def report(self) -> dict[str, Any]:
        return {
            "acked": len(self.latencies),
            **percentiles(self.latencies),
            "errors": dict(sorted(self.errors.items())),
            "non_aa_acks": self.non_aa,
            "connection_failures": self.errors.get("connect", 0),
        }


def _check(connections: int, seconds: float | None, count: int | None) -> None:
    if connections < 1:
        raise InputError("connections must be positive", field="connections", value=connections,
                         expected="an integer ≥ 1")  # fmt: skip
    if seconds is None and count is None:
        raise InputError("the load needs a bound", field="seconds", value=None,
                         expected="seconds or count, or both (whichever comes first)")  # fmt: skip


async def load_async(
    host: str,
    port: int,
    *,
    messages: Messages = sample_message,
    connections: int,
    seconds: float | None = None,
    count: int | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Drive ``host:port`` in closed loop over ``connections`` sockets, in this event loop.

    Connections are opened before the clock starts. Message ``i`` is ``messages(i)``; the run
    stops after ``seconds`` or ``count`` messages, whichever comes first. A message that fails
    is counted under its reason (``connect``, ``timeout``, ``closed``, ``oversize-ack``) and not
    resent; the next one reconnects.
    """
    _check(connections, seconds, count)
    clients = [MllpClient(host, port, timeout=timeout) for _ in range(connections)]
    tally = _Tally()
    try:
        await asyncio.gather(*(_open(c, tally) for c in clients))
        start = time.perf_counter()
        stop_at = start + seconds if seconds is not None else float("inf")
        numbers = itertools.count()

        def take() -> int | None:
            if time.perf_counter() >= stop_at:
                return None
            i = next(numbers)
            return i if count is None or i < count else None

        await asyncio.gather(*(_drive(c, take, messages, tally) for c in clients))
        took = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    report = tally.report()
    return {
        "connections": connections,
        "seconds": round(took, 3),
        "messages_per_s": round(report["acked"] / took, 1) if took > 0 else 0.0,
        **report,
    }


async def _open(client: MllpClient, tally: _Tally) -> bool:
    try:
        await client.connect()
    except EnvironmentFailure as exc:
        tally.errors[str(exc.details.get("reason"))] += 1
        return False
    return True


async def _drive(
    client: MllpClient, take: Callable[[], int | None], messages: Messages, tally: _Tally
) -> None:
    while (index := take()) is not None:
        if await _once(client, index, messages, tally) == "connect":
            await asyncio.sleep(0.1)  # do not spin on a refusing server


async def hold_async(
    host: str,
    port: int,
    connections: int = 1000,
    seconds: float = 10.0,
    *,
    messages: Messages = sample_message,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Open ``connections`` sockets and keep them open; send one message on each, all at once.

    After ``seconds`` (counted from when all were open) a second round on every connection
    checks they all survived the hold. Runs in this event loop.
    """
    _check(connections, seconds, None)
    clients = [MllpClient(host, port, timeout=timeout) for _ in range(connections)]
    first, second = _Tally(), _Tally()
    try:
        started = time.perf_counter()
        opened = await asyncio.gather(*(_open(c, first) for c in clients))
        open_s = time.perf_counter() - started
        live = [c for c, ok in zip(clients, opened, strict=True) if ok]
        held_from = time.perf_counter()
        await asyncio.gather(*(_once(c, i, messages, first) for i, c in enumerate(live)))
        burst_s = time.perf_counter() - held_from
        await asyncio.sleep(max(0.0, seconds - (time.perf_counter() - held_from)))
        reconnects, n = -sum(c.connects for c in live), len(live)
        await asyncio.gather(*(_once(c, n + i, messages, second) for i, c in enumerate(live)))
        reconnects += sum(c.connects for c in live)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {
        "connections": connections,
        "opened": len(live),
        "open_seconds": round(open_s, 3),
        "hold_seconds": seconds,
        "burst": {"seconds": round(burst_s, 3), **first.report()},
        "after_hold": {"reconnects": reconnects, **second.report()},
    }


async def _once(client: MllpClient, index: int, messages: Messages, tally: _Tally) -> str | None:
    """Send message ``index`` and tally its ACK, or its failure's reason (returned)."""
    message = messages(index)
    started = time.perf_counter()
    try:
        ack = await client.send(message)
    except EnvironmentFailure as exc:
        reason = str(exc.details.get("reason"))
        tally.errors[reason] += 1
        return reason
    tally.ack(time.perf_counter() - started, ack)
    return None


def _in_child(kind: str, host: str, port: int, options: dict[str, Any]) -> dict[str, Any]:
    """The child process's entry: raise the file limit, run one phase on uvloop, report."""
    raise_open_files_limit()
    phase = hold_async if kind == "hold" else load_async
    return run_loop(phase(host, port, **options))


def _generator() -> ProcessPoolExecutor:
    """One worker process, spawned (never forked from a process that may run a server)."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def run(
    host: str,
    port: int,
    *,
    messages: Messages = sample_message,
    connections: int,
    seconds: float | None,
    count: int | None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Run :func:`load_async` in a separate (spawned) process and return its report."""
    _check(connections, seconds, count)
    options = dict(messages=messages, connections=connections, seconds=seconds, count=count)
    with _generator() as pool:
        return pool.submit(_in_child, "load", host, port, options | {"timeout": timeout}).result()


def hold(
    host: str,
    port: int,
    connections: int = 1000,
    seconds: float = 10.0,
    *,
    messages: Messages = sample_message,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Run :func:`hold_async` in a separate (spawned) process and return its report."""
    _check(connections, seconds, None)
    options = dict(connections=connections, seconds=seconds, messages=messages, timeout=timeout)
    with _generator() as pool:
        return pool.submit(_in_child, "hold", host, port, options).result()


def bench(
    target_host: str,
    target_port: int,
    *,
    messages: Messages = sample_message,
    seconds: float = 10.0,
    connections: int = 100,
    hold_connections: int = 1000,
    hold_seconds: float = 10.0,
    peer: bool = True,
    progress: Progress = lambda _s: None,
) -> dict[str, Any]:
    """Run the three phases (module doc) against the target, then the peer; return JSON-ready.

    The target must be listening already, in another process (or another thread's event loop):
    this call blocks until the phases are done. ``ratio_vs_peer`` divides the target's
    messages/s by the peer's, phase by phase.
    """
    raise_open_files_limit()

    def phases(host: str, port: int, who: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with _generator() as pool:  # one spawned generator process for all three phases
            for conns in (1, connections):
                progress(f"{who}: closed loop over {conns} connection(s), {seconds:g} s")
                options = {"messages": messages, "connections": conns, "seconds": seconds}
                name = "1_connection" if conns == 1 else f"{conns}_connections"
                out[name] = pool.submit(_in_child, "load", host, port, options).result()
            progress(f"{who}: hold {hold_connections} connections for {hold_seconds:g} s")
            options = dict(connections=hold_connections, seconds=hold_seconds, messages=messages)
            held = f"{hold_connections}_held"
            out[held] = pool.submit(_in_child, "hold", host, port, options).result()
        return out

    report: dict[str, Any] = {
        "benchmark": "mllp",
        "cpus": os.cpu_count(),
        "loop": loop_name(),
        "seconds_per_phase": seconds,
        "target": phases(target_host, target_port, "target"),
    }
    if peer:
        with _peer_process() as port:
            report["peer"] = phases("127.0.0.1", port, "peer")
        report["ratio_vs_peer"] = {
            phase: round(ours["messages_per_s"] / theirs["messages_per_s"], 3)
            for phase, ours in report["target"].items()
            if "messages_per_s" in ours and (theirs := report["peer"][phase])["messages_per_s"]
        }
    return report


@contextmanager
def _peer_process() -> Iterator[int]:
    """Start the peer in a subprocess; yield its port; stop it."""
    cmd = [sys.executable, "-m", "medledger.benchmarks.mllp", "--port", "0"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty peer cannot block
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            line = proc.stdout.readline() if proc.stdout else ""  # printed once listening
            if not line.startswith("port "):
                err.seek(0)
                tail = err.read()[-500:].decode(errors="replace")
                raise EnvironmentFailure(f"the MLLP peer did not start: {tail}")
            yield int(line.split()[1])
        finally:
            stop_process(proc, 20)


async def _serve_peer(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with PeerServer(host=host, port=port, max_connections=4000) as server:
        print(f"port {server.port}", flush=True)
        await stop.wait()


def main() -> None:
    """Serve the peer: ``python -m medledger.benchmarks.mllp --port N`` (0 picks a free port,
    printed as ``port N`` on stdout once listening); SIGTERM stops it."""
    parser = argparse.ArgumentParser(description="MLLP transport peer (canned AA ACK)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run_loop(_serve_peer(args.host, args.port))


if __name__ == "__main__":
    main()
