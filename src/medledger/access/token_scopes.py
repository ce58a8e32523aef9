"""Which SMART scopes a principal may be issued: the default, and checking a requested scope.

Pure functions over a principal's effective permissions (``permissions.effective_permissions``).

- Users get ``user/`` scopes, clients ``system/`` scopes; ``patient/`` scopes need a patient
  launch context, which this server does not offer, so they are refused.
- With no ``scope`` requested, the token gets everything the roles allow, as scopes: a
  clinician ``user/*.crus``, a technician one scope per laboratory type, an auditor
  ``user/AuditEvent.rs``, an admin nothing (administration is not a SMART scope).
- A requested resource scope must lie within the roles: every interaction it names on its
  resource type must be one the roles allow (``scopes.narrow`` computes the overlap), or the
  request fails with ``invalid_scope``. ``offline_access`` and ``online_access`` are kept;
  identity scopes (``openid``, ``fhirUser``, ``profile``, ``launch…``) are dropped, since this
  server issues no ID tokens, and the answer's ``scope`` says what was granted (RFC 6749 §3.3).
"""

from __future__ import annotations

from collections.abc import Iterable

from medledger.access.model import AUDIT_RESOURCE, Action, Permission
from medledger.access.scopes import Scope, narrow, parse_scope, parse_scopes
from medledger.errors import InputError

__all__ = [
    "KEPT_SCOPES",
    "check_scope",
    "check_subset",
    "default_scope",
    "interactions",
    "still_allowed",
]

KEPT_SCOPES = frozenset({"offline_access", "online_access"})
"""Non-resource scopes a token may carry (they grant no resource access)."""

_LETTER = {"create": "c", "read": "r", "update": "u", "delete": "d", "search": "s"}
_ORDER = "cruds"


def interactions(permissions: Iterable[Permission]) -> frozenset[tuple[str, str]]:
    """Return the ``(action, resource type)`` pairs the permissions allow, in scope terms.

    ``write`` stays ``write`` (``scopes.narrow`` expands it to create and update);
    ``audit-read`` becomes read and search of AuditEvent; ``admin`` allows no data access.
    """
    out: set[tuple[str, str]] = set()
    for p in permissions:
        if p.action is Action.AUDIT_READ:
            out |= {("read", AUDIT_RESOURCE), ("search", AUDIT_RESOURCE)}
        elif p.action is not Action.ADMIN:
            out.add((p.action.value, p.resource))
    return frozenset(out)


def default_scope(permissions: Iterable[Permission], context: str) -> str:
    """Return the scopes (space-separated, SMART v2) equal to what ``permissions`` allow."""
    return _render(interactions(permissions), context)


def check_scope(requested: str, permissions: Iterable[Permission], context: str) -> str:
    """Return the scope to issue for a request of ``requested`` (normalized, space-separated).

    Raise ``InputError`` (field ``scope``, ``oauth_error`` ``invalid_scope``) naming the first
    scope that is malformed, of another context than ``context``, or beyond the permissions.
    """
    allowed = interactions(permissions)
    try:
        parsed = parse_scopes(requested)
    except InputError as exc:
        raise _invalid(exc.message, str(exc.value)) from None
    granted: list[str] = []
    for scope in parsed:
        if scope.context is None:
            if scope.text in KEPT_SCOPES:
                granted.append(scope.text)
            continue
        if scope.context != context:
            raise _invalid(
                f"scope {scope.text!r}: this principal may request {context}/ scopes only",
                scope.text,
            )
        if not _within(scope, allowed, context):
            raise _invalid(
                f"scope {scope.text!r} asks for more than the account's roles allow "
                f"({_render(allowed, context) or 'no resource access'})",
                scope.text,
            )
        granted.append(scope.text)
    return " ".join(granted)


def _render(allowed: frozenset[tuple[str, str]], context: str) -> str:
    """Write the pairs of ``interactions`` as scopes, one per resource type (``*`` first)."""
    single: dict[str, set[str]] = {}
    for action, rtype in allowed:
        for one in ("create", "update") if action == "write" else (action,):
            single.setdefault(rtype, set()).add(_LETTER[one])
    everything = single.get("*", set())
    out = []
    for rtype in sorted(single, key=lambda t: (t != "*", t)):
        letters = single[rtype]
        if rtype not in ("*", AUDIT_RESOURCE) and letters <= everything:
            continue  # already covered by context/*.…
        out.append(f"{context}/{rtype}.{''.join(c for c in _ORDER if c in letters)}")
    return " ".join(out)


def _within(scope: Scope, allowed: frozenset[tuple[str, str]], context: str) -> bool:
    """True if every interaction ``scope`` names on its type is one ``allowed`` holds."""
    rtype = scope.resource_type or "*"
    base = scope if scope.query is None else parse_scope(scope.text.split("?", 1)[0])
    # AuditEvent is reached only through audit-read, never through a role's "*".
    pairs = [(a, t) for a, t in allowed if t != "*" or rtype != AUDIT_RESOURCE]
    got = narrow(pairs, [base], contexts={context})
    wanted = {(a, rtype) for a, letter in _LETTER.items() if letter in base.letters}
    return wanted <= got


def _invalid(message: str, value: str) -> InputError:
    return InputError(
        message,
        field="scope",
        value=value,
        expected="SMART scopes within the account's roles, e.g. user/*.rs or system/Observation.rs",
        oauth_error="invalid_scope",
    )


def still_allowed(granted: str, permissions: Iterable[Permission], context: str) -> str:
    """Return the scopes of ``granted`` that ``permissions`` still allow (for a refresh)."""
    allowed = interactions(permissions)
    kept = [
        s.text
        for s in parse_scopes(granted)
        if (s.context is None and s.text in KEPT_SCOPES)
        or (s.context == context and _within(s, allowed, context))
    ]
    return " ".join(kept)


def check_subset(requested: str, granted: str) -> None:
    """Refuse (``invalid_scope``) a refresh that asks for a scope the sign-in did not get.

    A requested resource scope passes if every interaction it names is one a granted scope of
    the same context names on the same type or on ``*`` (RFC 6749 §6).
    """
    texts = {g.text for g in parse_scopes(granted)}
    have = {
        (g.context, a, g.resource_type or "*")
        for g in parse_scopes(granted)
        if g.context is not None and g.query is None  # a granular scope grants nothing
        for a in _pairs(g)
    }
    for s in parse_scopes(requested):
        if s.text in texts or (s.context is None and s.text not in KEPT_SCOPES):
            continue  # granted before, or an identity scope that is dropped anyway
        rtype = s.resource_type or "*"
        if s.context is None or not all(
            (s.context, a, rtype) in have or (s.context, a, "*") in have for a in _pairs(s)
        ):
            raise _invalid(f"scope {s.text!r} was not granted at sign-in", s.text)


def _pairs(scope: Scope) -> list[str]:
    """The FHIR interactions a scope's permission letters name."""
    return [a for a, letter in _LETTER.items() if letter in scope.letters]
