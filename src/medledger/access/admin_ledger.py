"""What the CLI and the admin API share around ``AccessAdmin``: role requests and anchoring.

Every directory change ``AccessAdmin`` makes returns an event; ``anchor`` appends it to the
ledger as an ``access.grant`` entry (``ledger_entry``) and returns the entry's index once it is
durable. The CLI takes the data directory's writer lock first; a running server already holds
it. The change itself is committed before it is anchored: if the append fails, the change
stands and the error says it was not anchored.

``audit_offline`` puts a change made from the CLI into the audit trail as well (a change made
through the admin API is audited by the server's middleware, like every request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medledger.access._admin_base import RoleRequest, ledger_entry
from medledger.access.lockout import Event
from medledger.access.model import default_scope, parse_role

if TYPE_CHECKING:
    from medledger.ledger.node import LedgerNode

__all__ = ["anchor", "audit_offline", "role_request"]


def anchor(node: LedgerNode, event: Event) -> int:
    """Append the ``access.grant`` entry of ``event``; return its ledger index."""
    return node.append([ledger_entry(event)])[0].index


def audit_offline(node: LedgerNode, event: Event) -> str:
    """Record ``event`` (made without a server, e.g. by the CLI) in the node's audit trail and
    anchor its batch; return the AuditEvent id. The caller holds the writer lock."""
    from medledger.access.audit_event import access_record
    from medledger.access.audit_trail import AuditTrail

    trail = AuditTrail(node.store.engine, node, node=node.config.node)
    try:
        event_id = trail.record(access_record(event))
        trail.flush()
    finally:
        trail.close()
    return event_id


def role_request(text: str) -> RoleRequest:
    """Parse ``ROLE`` or ``ROLE@SCOPE`` (scope ``own``, an institution id or ``*``).

    Without a scope the role's default applies: ``*`` for group_admin, ``own`` otherwise.
    """
    name, _, scope = text.partition("@")
    role = parse_role(name)
    return role, scope or default_scope(role)
