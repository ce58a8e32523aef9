"""No endpoint answers without a token except the public list, enumerated from the app itself
(so a route added tomorrow is covered), and every refused request leaves an audit event."""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi.routing import APIRoute
from starlette.routing import Route

from medledger.access.model import Role
from medledger.api.app import create_app, open_security
from medledger.api.security import PUBLIC
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from tests.api.conftest import Live, _free_port
from tests.identity import MEMBER, PASSWORD, admin_of, provision, token_for

DOCUMENTED_PUBLIC = {
    ("GET", "/fhir/R4/metadata"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/verify"),
    # OAuth: how one gets a token, and the keys and metadata to check one with.
    ("POST", "/auth/token"),
    ("POST", "/auth/revoke"),
    ("POST", "/auth/password"),  # checks the current password itself
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/smart-configuration"),
    # The API's own description (no data).
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/openapi.json"),
}


def _routes(live: Live) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, included routers flattened."""
    out = []
    for route in live.app.routes:
        # FastAPI ≥ 0.120 keeps included routers as one entry with their effective routes.
        contexts = getattr(route, "effective_route_contexts", None)
        members = list(contexts()) if callable(contexts) else [route]
        for member in members:
            assert isinstance(member, APIRoute | Route) or hasattr(member, "path"), member
            for method in sorted(member.methods or ()):
                if method != "HEAD":
                    out.append((method, member.path))
    return out


def _concrete(path: str) -> str:
    values = {"rtype": "Observation", "rid": "x1", "vid": "1", "eid": "e1"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x1"), path)


def test_public_list_is_exactly_the_documented_one() -> None:
    assert set(PUBLIC) == DOCUMENTED_PUBLIC


def test_every_other_route_needs_a_token(live: Live) -> None:
    routes = _routes(live)
    assert len(routes) >= 30, routes  # the enumeration really found the app's routes
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        _check_routes(live, anonymous, routes)


def _check_routes(live: Live, anonymous: httpx.Client, routes: list[tuple[str, str]]) -> None:
    refused = 0
    for method, path in routes:
        r = anonymous.request(method, _concrete(path))
        if (method, path) in DOCUMENTED_PUBLIC:
            assert r.status_code != 401, (method, path)
            continue
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)
        refused += 1
    # Paths no route serves are refused the same way (nothing tells what exists).
    for method, path in (("GET", "/nope"), ("DELETE", "/api/v1/anything"), ("GET", "/fhir/R4/")):
        assert anonymous.request(method, path).status_code == 401
    # A forged Authorization header is no better than none.
    forged = anonymous.get("/fhir/R4/Patient", headers={"Authorization": "Bearer e30.e30.e30"})
    assert forged.status_code == 401
    live.app.state.security.trail.flush()
    auditor = {"Authorization": live.ids.headers("auditor")["Authorization"]}
    found = anonymous.get("/fhir/R4/AuditEvent?outcome=4&_total=accurate&_count=1", headers=auditor)
    assert found.status_code == 200, found.text
    assert found.json()["total"] >= refused + 4  # every refused request was audited


def test_tls_serves_https_when_configured(tmp_path: Path) -> None:
    """``medledger serve --tls-cert/--tls-key``: HTTPS works, and the token rules still hold."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    node = LedgerNode.init(tmp_path / "d", node="hosp-central", block_max_wait_ms=1)
    service = RecordService.open(node)
    ids = provision(node)
    security = open_security(service)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service, security=security),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context) as https:
            assert https.get("/healthz").json() == {"status": "ok"}
            assert https.get("/fhir/R4/Patient").status_code == 401
            ok = https.get("/fhir/R4/Patient", headers=ids.headers("dr-central"))
            assert ok.status_code == 200
        # Plain HTTP on the TLS port gets no answer with data.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as plain:
            try:
                r = plain.get("/healthz")
            except httpx.HTTPError:
                pass
            else:
                assert r.status_code == 400
    finally:
        server.should_exit = True
        thread.join(10)
        security.close()
        node.close()


def test_sign_in_revoke_and_break_glass_reason_are_audited(live: Live) -> None:
    """A password sign-in is tied to the account, /auth/revoke answers 200 (not 503), a revoked
    token's refusal is audited under its account, and a Chinese break-glass reason is kept
    readable."""
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        r = anonymous.post(
            "/auth/token",
            data={"grant_type": "password", "username": "dr-member", "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        bad = anonymous.post(
            "/auth/token",
            data={"grant_type": "password", "username": "dr-member", "password": "wrong-" * 3},
        )
        assert bad.status_code in (400, 401)
        revoked = anonymous.post("/auth/revoke", data={"token": token})
        assert revoked.status_code == 200, revoked.text
        assert (
            anonymous.get(
                "/fhir/R4/Patient", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
        reason = "急诊抢救，患者昏迷"
        bg = anonymous.get(
            "/fhir/R4/Observation",
            headers={
                **live.ids.headers("dr-other"),
                "X-Break-Glass": reason.encode(),
            },
        )
        assert bg.status_code == 200, bg.text
    trail = live.app.state.security.trail
    trail.flush()
    events, _, _ = trail.search([("agent", "dr-member"), ("_count", "50")])
    texts = [e.get("outcomeDesc", "") for e in events]
    assert any("sign-in (password) succeeded" in t for t in texts), texts
    assert any("sign-in (password) failed" in t for t in texts), texts
    # The revoked token's 401 is filed under the account it names, not as anonymous.
    assert any("auth.token_invalid" in t for t in texts), texts
    flagged, _, _ = trail.search([("break_glass", "true")])
    assert len(flagged) == 1
    assert reason in str(flagged[0])


def test_an_owners_auditor_sees_who_else_read_its_records(live: Live) -> None:
    """An auditor of institution M finds the events of another institution's clinician reading
    M's record (break-glass here), and not the events that never touched M's records."""
    admin = admin_of(live.node)
    admin.add_user("audit-m", MEMBER, "audit-m", PASSWORD, [(Role.AUDITOR, MEMBER)], "root")
    auditor = {
        "Authorization": "Bearer "
        + token_for(live.node, "audit-m", MEMBER, ["auditor"], scope="user/*.rs", client=False)
    }
    with httpx.Client(base_url=live.url, timeout=30) as http:
        made = http.post(
            "/fhir/R4/Patient",
            json={"resourceType": "Patient", "name": [{"text": "王五"}]},
            headers=live.ids.headers("dr-member"),
        )
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        own = http.get("/fhir/R4/Patient", headers=live.ids.headers("dr-central"))
        assert own.status_code == 200
        bg = http.get(
            f"/fhir/R4/Patient/{rid}",
            headers={**live.ids.headers("dr-central"), "X-Break-Glass": b"emergency"},
        )
        assert bg.status_code == 200, bg.text
        live.app.state.security.trail.flush()
        found = http.get("/fhir/R4/AuditEvent?agent=dr-central&_count=50", headers=auditor)
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json().get("entry", [])]
    assert len(events) == 1, events  # the break-glass read, not dr-central's own search
    whats = [x.get("what", {}) for x in events[0].get("entity", [])]
    assert any(w.get("reference", "").startswith(f"Patient/{rid}/") for w in whats), whats
