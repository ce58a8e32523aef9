"""The permission algebra: resolve a role grant, decide an access, decide a delegation.

Pure functions over ``Permission`` values; nothing here reads storage.

- ``resolve`` turns a role and a grant scope into concrete permissions (no ``own`` left).
- ``allows`` answers "may a holder of these permissions do *action* on *resource* owned by
  *institution*?", the check the API enforces (cross-institution policy, consent and
  break-glass come on top of it, elsewhere).
- ``covers`` / ``check_grant`` implement "admins may only assign what they hold": a grant is
  allowed only if every permission in it is covered by one the granter holds, with the same
  action (or ``admin``, which is the right to delegate), the same or a wider resource (``*``)
  and the same or a wider scope (``*``).
"""

from __future__ import annotations

from collections.abc import Iterable

from medledger.access.model import (
    ANY,
    AUDIT_RESOURCE,
    OWN,
    ROLE_PERMISSIONS,
    Action,
    Grant,
    Permission,
    Role,
    check_id,
)
from medledger.errors import InputError, PermissionDenied

__all__ = [
    "allows",
    "check_admin_over",
    "check_grant",
    "covers",
    "effective_permissions",
    "first_uncovered",
    "grant_scope",
    "resolve",
]


def grant_scope(role: Role, scope: str, home: str) -> str:
    """Return the concrete scope of a grant of ``role`` with ``scope`` to someone of ``home``.

    ``own`` becomes ``home``; ``group_admin`` exists only group-wide (scope ``*``).
    """
    concrete = home if scope == OWN else scope
    if concrete != ANY:
        check_id(concrete, "scope")
    if role is Role.GROUP_ADMIN and concrete != ANY:
        raise InputError(
            "group_admin is granted group-wide only; for one institution grant institution_admin",
            field="scope",
            value=scope,
            expected="*",
        )
    return concrete


def resolve(role: Role, scope: str) -> frozenset[Permission]:
    """Return ``role``'s permissions with ``own`` replaced by the concrete ``scope``."""
    if scope == OWN:
        raise ValueError("resolve needs a concrete scope; call grant_scope first")
    return frozenset(
        Permission(p.action, p.resource, scope if p.scope == OWN else p.scope)
        for p in ROLE_PERMISSIONS[role]
    )


def effective_permissions(grants: Iterable[Grant]) -> frozenset[Permission]:
    """Return the union of the concrete permissions of ``grants``."""
    out: set[Permission] = set()
    for g in grants:
        out |= resolve(g.role, g.scope)
    return frozenset(out)


def _scope_covers(held: str, wanted: str) -> bool:
    return held in (ANY, wanted)


def _resource_covers(held: str, wanted: str) -> bool:
    return held in (ANY, wanted)


def covers(held: Permission, wanted: Permission) -> bool:
    """Return True if holding ``held`` entitles its holder to grant ``wanted`` to others.

    Both must be concrete (no ``own``). ``admin`` covers every action, including ``admin``.
    """
    if OWN in (held.scope, wanted.scope):
        raise ValueError("covers compares concrete permissions only")
    return (
        (held.action == wanted.action or held.action is Action.ADMIN)
        and _resource_covers(held.resource, wanted.resource)
        and _scope_covers(held.scope, wanted.scope)
    )


def first_uncovered(held: Iterable[Permission], wanted: Iterable[Permission]) -> Permission | None:
    """Return the first (sorted) permission of ``wanted`` that nothing in ``held`` covers."""
    have = list(held)
    for w in sorted(wanted):
        if not any(covers(h, w) for h in have):
            return w
    return None


def check_admin_over(held: Iterable[Permission], institution: str, who: str) -> None:
    """Raise PermissionDenied unless ``held`` includes ``admin`` over ``institution``."""
    if not any(p.action is Action.ADMIN and _scope_covers(p.scope, institution) for p in held):
        raise PermissionDenied(
            f"{who} does not hold admin:*@{institution}, which managing accounts of "
            f"{institution} needs",
            field="as",
            value=who,
            expected=f"an admin holding admin:*@{institution}",
        )


def check_grant(
    held: Iterable[Permission], wanted: Iterable[Permission], *, institution: str, who: str
) -> None:
    """Raise PermissionDenied unless a holder of ``held`` may grant ``wanted``.

    Requires ``admin`` over ``institution`` (the grantee's) and every permission of ``wanted``
    covered by one in ``held``: admins may only assign what they hold.
    """
    have = frozenset(held)
    check_admin_over(have, institution, who)
    missing = first_uncovered(have, wanted)
    if missing is not None:
        raise PermissionDenied(
            f"{who} may not grant {missing}: admins may only assign what they hold "
            "(the same or a wider scope)",
            field="permission",
            value=str(missing),
            expected=f"a permission {who} holds, or one admin:*@<scope> covers",
        )


def allows(held: Iterable[Permission], action: Action, resource: str, institution: str) -> bool:
    """Return True if ``held`` lets its holder do ``action`` on ``resource`` of ``institution``.

    ``admin`` grants no data access. AuditEvent is readable (``read``, ``search`` or
    ``audit-read``) only with ``audit-read``, never written through the API, and ``*`` never
    reaches it otherwise; ``audit-read`` reaches nothing else.
    """
    if action is Action.ADMIN:
        return any(p.action is Action.ADMIN and _scope_covers(p.scope, institution) for p in held)
    if resource == AUDIT_RESOURCE:
        if action not in (Action.READ, Action.SEARCH, Action.AUDIT_READ):
            return False
        action = Action.AUDIT_READ
    elif action is Action.AUDIT_READ:
        return False
    return any(
        p.action is action
        and (p.resource == resource or (p.resource == ANY and action is not Action.AUDIT_READ))
        and _scope_covers(p.scope, institution)
        for p in held
    )
