"""A real `medledger serve` with the gateway (HTTP + MLLP) as a child process, for the
end-to-end tests, and an MLLP receiver standing in for the member hospital's HIS."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from medledger.interop.hl7.ack import build_ack
from medledger.interop.hl7.codec import decode
from medledger.interop.mllp.server import MllpServer, Peer
from medledger.ledger.node import LedgerNode
from tests.identity import CENTRAL, MEMBER, Identities, provision

BIN = Path(sys.executable).parent / "medledger"
CLI = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "medledger.cli.main"]
MEMBER_FACILITY = "示例区中医院"
CENTRAL_FACILITY = "示例市第一人民医院"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """The member hospital's HIS: an MLLP listener that keeps every message and answers AA."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: MllpServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(payload: bytes, _peer: Peer) -> bytes:
            self.messages.append(payload)
            return build_ack(
                decode(payload),
                "AA",
                sender_app="HIS",
                sender_facility=MEMBER_FACILITY,
                control_id_factory=lambda: f"R{len(self.messages)}",
            )

        async def main() -> None:
            self._server = MllpServer(handle, port=0)
            await self._server.start()
            self.port = self._server.port
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def start(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                await self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Hub:
    """`medledger serve` over a data directory made (and provisioned) by the test."""

    def __init__(self, root: Path, *, receiver_port: int | None = None) -> None:
        self.data = root / "d"
        self.log = root / "serve.log"
        node = LedgerNode.init(self.data, node=CENTRAL, block_max_wait_ms=1)
        try:
            self.ids: Identities = provision(node)
        finally:
            node.close()
        config: dict[str, object] = {
            "facilities": {MEMBER_FACILITY: MEMBER, CENTRAL_FACILITY: CENTRAL},
            "barcodes": {"institutions": {MEMBER: "12", CENTRAL: "10", "hosp-other": "13"}},
            "delivery": {"deadline": "10m"},
        }
        if receiver_port is not None:
            config["routes"] = {
                MEMBER: {"mllp": f"127.0.0.1:{receiver_port}", "charset": "GB18030"}
            }
        (self.data / "interop.yaml").write_text(
            yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.mllp_port = 0

    def start(self) -> None:
        port, self.mllp_port = free_port(), free_port()
        argv = [*CLI, "serve", "--data", str(self.data), "--port", str(port)]
        argv += ["--mllp-port", str(self.mllp_port), "--audit-interval", "0.2"]
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited {self.proc.returncode}: {self.tail()}")
                try:
                    if client.get("/readyz").status_code == 200 and _listening(self.mllp_port):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"serve not ready: {self.tail()}")

    def http(self, who: str = "hub") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers=self.ids.headers(who))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
