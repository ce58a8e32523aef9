"""`medledger audit access|cert`, `medledger verify` and POST /api/v1/verify on audit certs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from medledger.access.audit_trail import AuditTrail
from medledger.api import errors, native
from medledger.ledger.node import LedgerNode
from tests.access._audit_fixtures import DR_LI, LIS, cli, read_record, trail_on


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[LedgerNode, AuditTrail, list[str], list[str]]]:
    """Six events, two of them break-glass; all anchored but the last."""
    with trail_on(tmp_path, None) as (node, trail):
        glass = replace(DR_LI, break_glass="patient unconscious in ER")
        callers = [DR_LI, glass, LIS, DR_LI, glass, LIS]
        ids = [trail.record(read_record(i, c)) for i, c in enumerate(callers)]
        trail.flush()
        last = trail.record(read_record(9))
        yield node, trail, [*ids, last], [ids[4], ids[1]]


def test_audit_access_break_glass_lists_exactly_those(
    env: tuple[LedgerNode, AuditTrail, list[str], list[str]],
) -> None:
    """--break-glass lists the break-glass events only, newest first, with the reason."""
    node, _, _, glass = env
    result = cli("audit", "access", "--break-glass", "--json", "--data", node.data_dir)
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in json.loads(result.output)] == glass
    table = cli("audit", "access", "--break-glass", "--data", node.data_dir)
    assert table.exit_code == 0, table.output
    assert table.output.count("BTG: patient unconscious in ER") == 2
    assert "2 event(s)" in table.output


def test_audit_access_filters(env: tuple[LedgerNode, AuditTrail, list[str], list[str]]) -> None:
    """--principal, --since and --limit narrow the list; a bad --since is a usage error."""
    node, _, ids, _ = env
    data = ("--data", node.data_dir, "--json")
    by_lis = json.loads(cli("audit", "access", "--principal", "lis-01", *data).output)
    assert [e["id"] for e in by_lis] == [ids[5], ids[2]]
    everything = json.loads(cli("audit", "access", "--since", "2000-01-01", *data).output)
    assert [e["id"] for e in everything] == ids[::-1]
    assert json.loads(cli("audit", "access", "--since", "2999-01-01", *data).output) == []
    assert len(json.loads(cli("audit", "access", "--limit", "2", *data).output)) == 2
    bad = cli("audit", "access", "--since", "yesterday", *data)
    assert bad.exit_code == 2
    assert "since" in bad.output


def test_audit_cert_verifies_offline_and_forgery_fails(
    env: tuple[LedgerNode, AuditTrail, list[str], list[str]], tmp_path: Path
) -> None:
    """`audit cert --out` writes a certificate `verify` accepts; an edit exits 1; --payload 2."""
    node, _, ids, _ = env
    out = tmp_path / "audit-cert.json"
    made = cli("audit", "cert", ids[3], "--out", out, "--data", node.data_dir)
    assert made.exit_code == 0, made.output
    trust = node.data_dir / "keys.json"
    ok = cli("verify", out, "--trust", trust)
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    assert "leaf 3 of audit batch" in ok.output
    printed = cli("audit", "cert", ids[3], "--data", node.data_dir)
    assert json.loads(printed.output) == json.loads(out.read_text())
    cert = json.loads(out.read_text())
    cert["event"]["agent"][0]["who"]["identifier"]["value"] = "dr.wu"
    out.write_text(json.dumps(cert))
    bad = cli("verify", out, "--trust", trust, "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.output)["check"] == "audit.inclusion"
    assert cli("verify", out, "--trust", trust, "--payload", out).exit_code == 2
    pending = cli("audit", "cert", ids[6], "--data", node.data_dir)
    assert pending.exit_code == 2
    assert "not anchored yet" in pending.output


def test_native_verify_accepts_audit_certificates(
    env: tuple[LedgerNode, AuditTrail, list[str], list[str]],
) -> None:
    """POST /api/v1/verify: an audit certificate is valid; edited, it names the failed check."""
    node, trail, ids, _ = env
    app = FastAPI()
    errors.install(app)
    app.include_router(native.router(node.trust, max_body=1 << 20))

    def post(body: dict[str, object]) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.post("/api/v1/verify", json=body)

        return asyncio.run(go())

    cert = trail.certificate(ids[0])
    ok = post({"certificate": cert})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["valid"] is True
    assert body["leaf_index"] == cert["ledger"]["leaf_index"]
    cert["batch"]["root"] = "00" * 32
    bad = post({"certificate": cert}).json()
    assert bad["valid"] is False
    assert bad["check"] == "audit.inclusion"
    assert post({"certificate": cert, "payload": "x"}).status_code == 400
    del cert["batch"]["path"]
    assert post({"certificate": cert}).status_code == 400
