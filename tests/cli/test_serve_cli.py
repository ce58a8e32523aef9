"""``medledger serve`` as a process: first start creates the node, SIGTERM closes it cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MEDLEDGER = str(Path(sys.executable).parent / "medledger")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [MEDLEDGER, "serve", "--data", str(data), "--port", str(port), *extra],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}")
        try:
            ready = httpx.get(url + "/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert ready.json()["status"] == "ready"
        return proc, url
    proc.kill()
    raise AssertionError("server did not become ready")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_start_initialises_and_a_signal_stops_cleanly(tmp_path: Path, sig: int) -> None:
    """An empty DIR becomes a node; SIGTERM/SIGINT exit 0 and release the writer lock."""
    data = tmp_path / "node"
    proc, url = _start(data, "--node", "hosp-east")
    created = httpx.post(
        url + "/fhir/R4/Patient",
        json={"resourceType": "Patient", "gender": "female"},
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    # No token yet (accounts come from `medledger admin`): refused, and audited.
    assert created.status_code == 401
    assert created.headers["www-authenticate"].startswith("Bearer")
    proc.send_signal(sig)
    assert proc.wait(20) == 0
    assert json.loads((data / "medledger.json").read_text())["node"] == "hosp-east"
    # The writer lock is free again: an admin command that needs it runs.
    done = subprocess.run(
        [MEDLEDGER, "audit", "--data", str(data), "--records"], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [MEDLEDGER, "audit", "access", "--data", str(data), "--json"],
        capture_output=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert [e["outcome"] for e in events] == ["4"]  # the refused request, anchored at stop
    again, _ = _start(data)  # and the same DIR serves again, without init
    again.send_signal(signal.SIGTERM)
    assert again.wait(20) == 0


def test_db_for_an_existing_directory_must_match(tmp_path: Path) -> None:
    """--db on a DIR created with another database is a usage error (2) that changes nothing."""
    data = tmp_path / "node"
    proc, _ = _start(data)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    before = sorted(p.name for p in data.iterdir())
    done = subprocess.run(
        [MEDLEDGER, "serve", "--data", str(data), "--db", "sqlite:////tmp/elsewhere.db"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"db" in done.stderr
    assert b"Traceback" not in done.stderr
    assert sorted(p.name for p in data.iterdir()) == before
