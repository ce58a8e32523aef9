"""Helpers shared by the token tests: a node with a populated directory and its TokenService."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jwk, jwt

from medledger.access.assertions import CLIENT_ASSERTION_TYPE
from medledger.access.jose_sm2 import ClientAssertionRegistry
from medledger.access.lockout import Event
from medledger.access.model import InstitutionKind, Role
from medledger.access.passwords import FAST, PasswordHasher
from medledger.access.token_service import TokenService
from medledger.crypto import get_suite
from medledger.ledger.node import LedgerNode

ROOT_PW = "root-password-0001"
PW = "a-good-password-42"
URL = "https://ledger.hosp-a.example/auth/token"
START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand (tokens, lockout and pruning all read it)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """A node, its token service, the clock, the events seen and the clients' credentials."""

    node: LedgerNode
    service: TokenService
    clock: Clock
    events: list[Event]
    lis_secret: str = field(repr=False)
    pacs_key: Any = field(repr=False)  # the private JWK pacs-01 signs assertions with
    sm2_key: Any = field(repr=False)  # an sm-v1 SigningKey of the client sm2-01

    def password(self, user: str = "dr.li", password: str = PW, **form: str) -> dict[str, Any]:
        """Run a password grant; return the answer."""
        body = {"grant_type": "password", "username": user, "password": password, **form}
        return self.service.handle(body, None, token_endpoint_url=URL)

    def client(self, **form: str) -> dict[str, Any]:
        """Run a client_credentials grant as lis-01 (HTTP Basic)."""
        body = {"grant_type": "client_credentials", **form}
        return self.service.handle(body, ("lis-01", self.lis_secret), token_endpoint_url=URL)

    def refresh(self, token: str, **form: str) -> dict[str, Any]:
        body = {"grant_type": "refresh_token", "refresh_token": token, **form}
        return self.service.handle(body, None, token_endpoint_url=URL)

    def bearer(self, token: str) -> Any:
        return self.service.authenticate_bearer(
            token, address="127.0.0.1", purpose=None, break_glass=None
        )

    def assertion(self, jti: str = "a-1", **claims: Any) -> dict[str, str]:
        """Form members of a private_key_jwt client_credentials request by pacs-01 (EdDSA)."""
        body = {
            "iss": "pacs-01",
            "sub": "pacs-01",
            "aud": URL,
            "iat": int(self.clock.now),
            "exp": int(self.clock.now) + 120,
            "jti": jti,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        token = jwt.encode(
            {"alg": "EdDSA", "kid": self.pacs_key.kid},
            body,
            self.pacs_key,
            registry=ClientAssertionRegistry.allowing(("EdDSA",)),
        )
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": token,
        }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sm2_assertion(key: Any, now: float, jti: str = "s-1") -> str:
    """A client assertion of sm2-01 signed with SM2SM3 (made by hand: JOSE lacks SM2)."""
    header = b64(json.dumps({"alg": "SM2SM3", "kid": "sm2-key"}).encode())
    claims = {"iss": "sm2-01", "sub": "sm2-01", "aud": URL, "exp": int(now) + 60, "jti": jti}
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(signature)}"


@contextmanager
def world(tmp_path: Path, db_url: str | None, suite: str = "intl-v1", **kw: Any) -> Iterator[World]:
    """A fresh node (SQLite in ``tmp_path`` or the given PostgreSQL) with a populated directory.

    Institutions hosp-a (central) and hosp-b; users root (group_admin), dr.li (clinician at
    hosp-a), tech (technician), audi (auditor), eb (institution_admin of hosp-b); clients
    lis-01 (secret, integration), pacs-01 (Ed25519 JWK, integration) and sm2-01 (SM2 JWK).
    """
    clock = Clock()
    events: list[Event] = []
    node = LedgerNode.init(
        tmp_path / "node", suite=suite, db=db_url, node="hosp-a", block_max_wait_ms=1
    )
    try:
        service = TokenService.for_node(
            node, hasher=PasswordHasher(FAST), clock=clock, on_event=events.append, **kw
        )
        admin = service.admin()
        admin.add_institution("hosp-a", "A", InstitutionKind.CENTRAL, None)
        admin.add_user("root", "hosp-a", "Root", ROOT_PW, [(Role.GROUP_ADMIN, "*")], None)
        admin.add_institution("hosp-b", "B", InstitutionKind.MEMBER, "root")
        for user, role in (
            ("dr.li", Role.CLINICIAN),
            ("tech", Role.TECHNICIAN),
            ("audi", Role.AUDITOR),
        ):
            admin.add_user(user, "hosp-a", user, PW, [(role, "own")], "root")
        admin.add_user("eb", "hosp-b", "EB", PW, [(Role.INSTITUTION_ADMIN, "own")], "root")
        integration = [(Role.INTEGRATION, "own")]
        secret, _ = admin.add_client(
            "lis-01", "hosp-a", "LIS", integration, jwk=None, with_secret=True, actor="root"
        )
        assert secret is not None
        pacs_key = jwk.generate_key("OKP", "Ed25519", auto_kid=True)
        public = json.dumps(pacs_key.as_dict(private=False)).encode()
        admin.add_client(
            "pacs-01", "hosp-a", "PACS", integration, jwk=public, with_secret=False, actor="root"
        )
        sm2 = get_suite("sm-v1").generate_signing_key()
        point = sm2.public_bytes
        sm2_jwk = {"kty": "EC", "crv": "SM2", "x": b64(point[1:33]), "y": b64(point[33:])}
        admin.add_client(
            "sm2-01",
            "hosp-a",
            "SM2 LIS",
            integration,
            jwk=json.dumps({**sm2_jwk, "kid": "sm2-key"}).encode(),
            with_secret=False,
            actor="root",
        )
        events.clear()
        yield World(node, service, clock, events, secret, pacs_key, sm2)
    finally:
        node.close()


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds (for server start-up in the HTTP tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)
