"""Image links checked against the content hash stored (and anchored) with the report."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medledger.cli.main import app
from medledger.crypto.registry import get_suite
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # the report image as the PACS serves it


class Pacs:
    """A PACS web server whose image can be swapped behind the report's back."""

    def __init__(self) -> None:
        self.body = IMAGE
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wado/report.png"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def pacs() -> Iterator[Pacs]:
    server = Pacs()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _document(url: str, content_hash: str | None) -> dict[str, Any]:
    attachment: dict[str, Any] = {"url": url, "contentType": "image/png"}
    if content_hash:
        attachment["extension"] = [
            {"url": "urn:medledger:content-hash", "valueString": content_hash}
        ]
    return {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": attachment}]}  # fmt: skip


@pytest.mark.parametrize("algo", ["sha256", "sm3"])
def test_check_image_matches_then_detects_a_swap(tmp_path: Path, pacs: Pacs, algo: str) -> None:
    """The CLI exits 0 while the served image is the reported one, 1 once it was replaced,
    and 2 for a link stored without a hash; SHA-256 and SM3 both."""
    digest = (
        hashlib.sha256(IMAGE).hexdigest()
        if algo == "sha256"
        else get_suite("sm-v1").hash(IMAGE).hex()
    )
    data = tmp_path / "d"
    with LedgerNode.init(data, node="hosp-central", block_max_wait_ms=1) as node:
        service = RecordService.open(node)
        with_hash = service.create("DocumentReference", _document(pacs.url, f"{algo}:{digest}"))
        without = service.create("DocumentReference", _document(pacs.url, None))
    runner = CliRunner()

    def check(rid: str) -> Any:
        ref = f"DocumentReference/{rid}"
        return runner.invoke(app, ["interop", "check-image", ref, "--data", str(data)])

    ok = check(with_hash.version.rid)
    assert ok.exit_code == 0, ok.output
    assert "matches" in ok.output
    pacs.body = IMAGE[:-1] + b"\x00"  # one byte changed on the PACS
    swapped = check(with_hash.version.rid)
    assert swapped.exit_code == 1, swapped.output
    assert "DIFFERS" in swapped.output
    assert check(without.version.rid).exit_code == 2
