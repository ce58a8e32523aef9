"""A real HTTP server (uvicorn on a loopback port) over a fresh node, per test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from medledger.api.app import create_app, open_security
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from tests.identity import Identities, provision


@dataclass
class Live:
    url: str
    client: httpx.Client  # sends the group-wide "hub" client's token
    service: RecordService
    node: LedgerNode
    ids: Identities
    app: Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, db_url: str | None) -> Iterator[Live]:
    node = LedgerNode.init(tmp_path / "d", db=db_url, node="hosp-central", block_max_wait_ms=1)
    service = RecordService.open(node)
    ids = provision(node)
    # Audit batches are anchored at close (or by flush()), not every second: tests compare
    # ledger sizes before and after requests.
    app = create_app(
        service, max_body=64 * 1024, security=open_security(service, audit_interval=3600)
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30, headers=ids.headers("hub")) as client:
        yield Live(url, client, service, node, ids, app)
    server.should_exit = True
    thread.join(10)
    app.state.security.close()
    node.close()
