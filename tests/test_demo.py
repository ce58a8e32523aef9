"""`make run`'s hub demo, for real: a subprocess serving HTTP, its printed commands run by bash."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from medledger import demo
from medledger.demo_story import build_story

DEMO = [sys.executable, "-m", "medledger.demo"]


def _env(port: int, *, exit_after: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLEDGER_")}
    env.update(MEDLEDGER_DEMO_PORT=str(port), PYTHONUNBUFFERED="1")
    if exit_after:
        env["MEDLEDGER_DEMO_EXIT"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bash(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


class _Lines:
    """The demo's merged stdout/stderr, line by line, read by a thread (so waits can time out)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, prefix: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail("the demo exited early:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if line.startswith(prefix):
                return self.seen
        pytest.fail(f"no line starting {prefix!r} in {timeout}s:\n" + "\n".join(self.seen))


def _commands(output: list[str]) -> list[str]:
    return [line for line in output if line.startswith(("curl ", "printf "))]


def test_demo_serves_its_printed_commands_then_stops_and_reruns(tmp_path: Path) -> None:
    """Every printed command works as printed; verify passes, then fails on a one-char edit.

    Ctrl-C stops the server cleanly; a second run recreates the marked demo directory (here
    on a port that is taken, so it moves to a free one) and exits after printing.
    """
    proc = subprocess.Popen(
        DEMO,
        cwd=tmp_path,
        env=_env(_free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = _Lines(proc)
    try:
        output = lines.until("Serving on ", timeout=90)
        text = "\n".join(output)
        for expected in ("/docs", "/fhir/R4/metadata", "示例市第一人民医院", "示例区中医院"):
            assert expected in text
        commands = _commands(output)
        assert len(commands) == 9, text
        done = [_bash(c, tmp_path) for c in commands]
        for c, r in zip(commands, done, strict=True):
            assert r.returncode == 0, (c, r.stdout, r.stderr)
        order = json.loads(done[0].stdout)
        assert order["resourceType"] == "ServiceRequest"
        assert order["status"] == "completed"
        assert order["performer"] == [{"reference": "Organization/hosp-central"}]
        reports = json.loads(done[1].stdout)
        assert reports["type"] == "searchset"
        assert reports["total"] >= 1
        assert {e["resource"]["resourceType"] for e in reports["entry"]} == {"DiagnosticReport"}
        history = json.loads(done[2].stdout)
        assert history["total"] == 2
        assert [e["resource"]["status"] for e in history["entry"]] == ["amended", "final"]
        specimens = json.loads(done[3].stdout)
        assert [e["resource"]["resourceType"] for e in specimens["entry"]] == ["Specimen"]
        assert done[4].stdout.strip().endswith("VALID")
        assert json.loads(done[5].stdout)["valid"] is True
        # The auditor reads the trail: the member's doctor's read of line 1 is in it, as a
        # ref, a pseudonym and ids; no clinical content.
        trail = json.loads(done[6].stdout)
        assert trail["resourceType"] == "Bundle"
        assert len(trail["entry"]) == 3
        events = [e["resource"] for e in trail["entry"]]
        assert {e["resourceType"] for e in events} == {"AuditEvent"}
        assert all(e["recorded"] for e in events)
        assert order["code"]["text"] not in done[6].stdout  # no clinical text in the trail
        # The gateway took an order and its report over MLLP: both stored, nothing lost.
        totals = json.loads(done[7].stdout)["totals"]
        assert (totals["stored"], totals["lost"], totals["unfinished"]) == (2, 0, 0)
        assert done[8].stdout.strip() == "401"

        verify = commands[4].rsplit(" && ", 1)[1]
        assert " verify " in verify
        report = tmp_path / "medledger-demo" / "report.json"
        body = report.read_text(encoding="utf-8")
        assert '"amended"' in body
        report.write_text(body.replace('"amended"', '"amendeb"', 1), encoding="utf-8")
        tampered = _bash(verify, tmp_path)
        assert tampered.returncode == 1, (tampered.stdout, tampered.stderr)
        assert "INVALID: payload" in tampered.stdout

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        lines.thread.join(5)
        rest = list(iter(lines.queue.get_nowait, None))
        assert any("stopped" in line for line in rest), rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    first = re.search(r"chain ([0-9a-f]+)", text)

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        again = subprocess.run(
            DEMO,
            cwd=tmp_path,
            env=_env(port, exit_after=True),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"port {port} is taken" in again.stdout
    assert len(_commands(again.stdout.splitlines())) == 9
    second = re.search(r"chain ([0-9a-f]+)", again.stdout)
    assert first is not None
    assert second is not None
    assert first.group(1) != second.group(1)  # a fresh ledger
    assert not (tmp_path / "medledger-demo" / "report.json").exists()
    assert (tmp_path / "medledger-demo" / "data" / "keys.json").exists()


def test_refuses_a_directory_it_did_not_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ./medledger-demo without the marker file is left alone, and the demo stops."""
    precious = tmp_path / "medledger-demo" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("not yours")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDLEDGER_DEMO_PORT", str(_free_port()))
    with pytest.raises(SystemExit, match="is not a demo directory"):
        demo.main()  # refuses before it starts anything (signals, ledger, server)
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious.txt"]
    assert precious.read_text() == "not yours"


def test_story_is_seeded() -> None:
    """The same seed builds the same story; another seed another one."""
    assert build_story(7) == build_story(7)
    assert build_story(7) != build_story(8)
    story = build_story(7, patients=12)
    kinds = {k for e in story.episodes for k in e.reports}
    assert kinds == {"CT", "US", "CBC", "CHEM"}
