"""Test identities: institutions, accounts and access tokens on a fresh node.

Real accounts through ``AccessAdmin`` (as ``medledger admin`` makes them), tokens signed with
the node key exactly as ``/auth/token`` signs them; only the Argon2 cost is lowered (``FAST``)
so that hundreds of tests do not each spend 100 ms hashing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from medledger.access.admin import AccessAdmin
from medledger.access.model import InstitutionKind, Role
from medledger.access.passwords import FAST, PasswordHasher
from medledger.access.tokens import NodeTokenKey, TokenPolicy, issue_access_token
from medledger.ledger.node import LedgerNode

CENTRAL, MEMBER, OTHER = "hosp-central", "hosp-member", "hosp-other"
PASSWORD = "Test-passw0rd-for-tests"
GROUP_SCOPE = "*"


@dataclass
class Identities:
    """Tokens by account name; ``headers(name)`` gives the Authorization header."""

    node: LedgerNode
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, name: str = "hub") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def admin_of(node: LedgerNode) -> AccessAdmin:
    return AccessAdmin.open(
        node.store.engine, node.data_dir, node.suite, hasher=PasswordHasher(FAST)
    )


def token_for(
    node: LedgerNode,
    subject: str,
    institution: str,
    roles: list[str],
    *,
    scope: str,
    client: bool,
    ttl: int = 3600,
) -> str:
    chain = node.config.chain
    issued = issue_access_token(
        NodeTokenKey.for_node(node),
        TokenPolicy(issuer=chain, audience=chain),
        subject=subject,
        institution=institution,
        roles=roles,
        scope=scope,
        now=time.time(),
        client_id=subject if client else None,
        ttl=ttl,
    )
    return issued.access_token


def provision(node: LedgerNode) -> Identities:
    """Three institutions; ``root`` (group admin); ``hub`` (an integration client with
    group-wide scope, what the pre-access-control tests ran as); per-institution clinicians
    ``dr-central``/``dr-member``/``dr-other`` and an ``auditor`` of the whole group."""
    admin = admin_of(node)
    for inst, kind in ((CENTRAL, "central"), (MEMBER, "member"), (OTHER, "member")):
        admin.add_institution(inst, inst, InstitutionKind(kind), actor=None)
    admin.add_user("root", CENTRAL, "root", PASSWORD, [(Role.GROUP_ADMIN, GROUP_SCOPE)], None)
    admin.add_client(
        "hub",
        CENTRAL,
        "test hub",
        [(Role.INTEGRATION, GROUP_SCOPE)],
        jwk=None,
        with_secret=True,
        actor="root",
    )
    ids = Identities(node)
    ids.tokens["hub"] = token_for(
        node, "hub", CENTRAL, ["integration"], scope="system/*.cruds", client=True
    )
    for name, inst in (("dr-central", CENTRAL), ("dr-member", MEMBER), ("dr-other", OTHER)):
        admin.add_user(name, inst, name, PASSWORD, [(Role.CLINICIAN, inst)], "root")
        ids.tokens[name] = token_for(
            node, name, inst, ["clinician"], scope="user/*.cruds", client=False
        )
    admin.add_user("auditor", CENTRAL, "auditor", PASSWORD, [(Role.AUDITOR, GROUP_SCOPE)], "root")
    ids.tokens["auditor"] = token_for(
        node, "auditor", CENTRAL, ["auditor"], scope="user/*.rs", client=False
    )
    return ids
