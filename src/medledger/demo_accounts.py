"""The hub demo's accounts: what a group's administrator sets up before the first request.

Both institutions with their signing keys, a group administrator, one clinician per hospital,
a group auditor, and the two systems that exchange the referrals: the member hospital's HIS
and the central hospital's LIS/PACS (service accounts with client secrets). Every change is
anchored on the ledger as an ``access.grant`` entry, as ``medledger admin`` does. The demo
then signs in over HTTP like any client (``/auth/token``) and writes each person's ready-made
``Authorization`` header to a file (mode 0600) that the printed ``curl`` lines read with
``-H @file``: a demo convenience that never bypasses a check.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from medledger.access.admin import AccessAdmin
from medledger.access.admin_ledger import anchor
from medledger.access.model import InstitutionKind, Role
from medledger.ledger.node import LedgerNode

CENTRAL, MEMBER = "hosp-central", "hosp-member-east"
SYSTEMS = {"his-member": (MEMBER, "成员医院 HIS"), "lis-central": (CENTRAL, "总院 LIS/PACS")}
PEOPLE = {
    "dr.member": (MEMBER, "成员医院 全科医生", Role.CLINICIAN, MEMBER),
    "dr.central": (CENTRAL, "总院 影像科医生", Role.CLINICIAN, CENTRAL),
    "auditor": (CENTRAL, "集团 审计员", Role.AUDITOR, "*"),
}


@dataclass
class Accounts:
    """Client secrets and user passwords (demo only: printed, never reused)."""

    secrets: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)


def create_accounts(node: LedgerNode, institutions: list[tuple[str, str, str]]) -> Accounts:
    """Register the institutions, people and systems; anchor every change."""
    admin = AccessAdmin.open(node.store.engine, node.data_dir, node.suite)
    out = Accounts()
    for inst, name, _ in institutions:
        kind = InstitutionKind.CENTRAL if inst == CENTRAL else InstitutionKind.MEMBER
        anchor(node, admin.add_institution(inst, name, kind, actor=None)[1])
    out.passwords["admin"] = _password()
    event = admin.add_user(
        "admin", CENTRAL, "集团 管理员", out.passwords["admin"], [(Role.GROUP_ADMIN, "*")], None
    )
    anchor(node, event)
    for user, (inst, name, role, scope) in PEOPLE.items():
        out.passwords[user] = _password()
        anchor(
            node, admin.add_user(user, inst, name, out.passwords[user], [(role, scope)], "admin")
        )
    for client, (inst, name) in SYSTEMS.items():
        secret, event = admin.add_client(
            client, inst, name, [(Role.INTEGRATION, inst)], jwk=None, with_secret=True,
            actor="admin",
        )  # fmt: skip
        anchor(node, event)
        assert secret is not None
        out.secrets[client] = secret
    return out


def _password() -> str:
    return "Demo-" + secrets.token_urlsafe(12)


def client_token(http: httpx.Client, client: str, secret: str) -> str:
    """Sign a system in (client_credentials, client_secret_basic)."""
    r = http.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(client, secret))
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def user_token(http: httpx.Client, user: str, password: str) -> str:
    """Sign a person in (password grant)."""
    r = http.post(
        "/auth/token", data={"grant_type": "password", "username": user, "password": password}
    )
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def write_header(path: Path, token: str) -> Path:
    """Write ``Authorization: Bearer <token>`` for ``curl -H @path`` (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(f"Authorization: Bearer {token}\n")
    return path
