"""SMART on FHIR scopes: parse them, ask what they allow, narrow role permissions with them.

A resource scope is ``context/ResourceType.permissions`` (SMART App Launch 2.x, §Scopes):

- context: ``patient`` (one patient's compartment), ``user`` (what the user may see) or
  ``system`` (a backend service, no user);
- resource type: a FHIR type such as ``Observation``, or ``*`` for every type;
- permissions, in either syntax:

  * SMART v1: ``read`` (= v2 ``rs``), ``write`` (= ``cud``) or ``*`` (= ``cruds``);
  * SMART v2: a non-empty subsequence of ``cruds``, in that order, each letter once
    (``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search), optionally followed
    by ``?param=value&…`` (a granular scope such as ``patient/Observation.rs?category=…``).

A granular (``?…``) scope is parsed and kept but grants nothing in ``allows``: honouring it
needs the resource itself, which this module never sees. Granting nothing is the safe reading.

``patient/`` scopes only count when the caller says it enforces the patient compartment (pass
``contexts`` including ``"patient"``); by default ``allows`` considers ``user`` and ``system``.

Non-resource scopes that SMART defines (``openid``, ``fhirUser``, ``profile``, ``launch``,
``launch/patient``, ``launch/encounter``, ``offline_access``, ``online_access``) are accepted
and grant no resource access. Anything else is an ``InputError`` naming the bad scope.

Actions are the FHIR interactions ``create``, ``read``, ``update``, ``delete``, ``search``;
``write`` (what ``medledger.access.model`` calls creating or updating) needs both ``c`` and
``u``, so a create-only scope never passes a generic write check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from medledger.errors import InputError

__all__ = [
    "ACTIONS",
    "CONTEXTS",
    "DEFAULT_CONTEXTS",
    "OTHER_SCOPES",
    "Scope",
    "allows",
    "narrow",
    "parse_scope",
    "parse_scopes",
]

CONTEXTS = ("patient", "user", "system")
DEFAULT_CONTEXTS: frozenset[str] = frozenset({"user", "system"})
OTHER_SCOPES: frozenset[str] = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)

_LETTERS = "cruds"
ACTIONS: dict[str, frozenset[str]] = {
    "create": frozenset("c"),
    "read": frozenset("r"),
    "update": frozenset("u"),
    "delete": frozenset("d"),
    "search": frozenset("s"),
    "write": frozenset("cu"),
}
"""Each action the checks accept, and the v2 letters a scope must hold for it."""

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = r"(?:[A-Z][A-Za-z]{1,63}|\*)"
_SCOPE = re.compile(
    rf"(?P<context>patient|user|system)/(?P<type>{_RESOURCE})\."
    r"(?P<perms>read|write|\*|[cruds]{1,5})(?:\?(?P<query>[^\s?]+))?"
)
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
_MAX_SCOPES = 100
_MAX_TEXT = 4096
_EXPECTED = (
    "context/Type.permissions: context patient, user or system; Type a FHIR resource type or *; "
    "permissions read, write or * (SMART v1) or letters from cruds in that order (v2), "
    "e.g. system/Observation.rs or user/*.read"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed scope; ``context`` is None for a non-resource scope such as ``openid``."""

    text: str
    context: str | None = None
    resource_type: str | None = None
    letters: frozenset[str] = frozenset()
    query: str | None = None

    def grants(self, action: str, resource_type: str, contexts: frozenset[str]) -> bool:
        """Return True if this scope alone allows ``action`` on ``resource_type``."""
        if self.context is None or self.context not in contexts or self.query is not None:
            return False
        if self.resource_type not in ("*", resource_type):
            return False
        return _letters_for(action) <= self.letters

    def __str__(self) -> str:
        return self.text


def _bad(text: str, problem: str) -> InputError:
    return InputError(f"scope {text!r}: {problem}", field="scope", value=text, expected=_EXPECTED)


def parse_scope(text: str) -> Scope:
    """Parse one scope token; raise ``InputError`` (field ``scope``) if it is malformed."""
    if not isinstance(text, str) or not _TOKEN.fullmatch(text):
        raise _bad(str(text), "not a scope token (printable ASCII, no spaces, quotes or \\)")
    if text in OTHER_SCOPES:
        return Scope(text)
    m = _SCOPE.fullmatch(text)
    if m is None:
        raise _bad(text, "not a SMART resource scope or a known SMART scope")
    perms = m["perms"]
    if perms in _V1:
        if m["query"] is not None:
            raise _bad(text, "a ?query needs the SMART v2 permission letters (cruds)")
        letters = _V1[perms]
    else:
        if not _in_order(perms):
            raise _bad(text, "permission letters must each appear once, in the order c r u d s")
        letters = perms
    return Scope(text, m["context"], m["type"], frozenset(letters), m["query"])


def _in_order(perms: str) -> bool:
    """True if ``perms`` is a subsequence of ``cruds`` with no repeats."""
    positions = [_LETTERS.index(c) for c in perms]
    return all(a < b for a, b in pairwise(positions))


def parse_scopes(text: str | Iterable[str]) -> tuple[Scope, ...]:
    """Parse a space-separated scope string (or a list of tokens); repeats are dropped."""
    if isinstance(text, str):
        if len(text) > _MAX_TEXT:
            raise InputError(
                "scope string is too long",
                field="scope",
                value=len(text),
                expected=f"at most {_MAX_TEXT} characters",
            )
        tokens = text.split()
    else:
        tokens = list(text)
    if len(tokens) > _MAX_SCOPES:
        raise InputError(
            "too many scopes",
            field="scope",
            value=len(tokens),
            expected=f"at most {_MAX_SCOPES} scopes",
        )
    out: dict[str, Scope] = {}
    for token in tokens:
        if token not in out:
            out[token] = parse_scope(token)
    return tuple(out.values())


def _letters_for(action: str) -> frozenset[str]:
    letters = ACTIONS.get(action)
    if letters is None:
        raise InputError(
            f"unknown action {action!r} for a scope check",
            field="action",
            value=action,
            expected=", ".join(ACTIONS),
        )
    return letters


def _scopes(scopes: str | Iterable[str | Scope]) -> tuple[Scope, ...]:
    if isinstance(scopes, str):
        return parse_scopes(scopes)
    return tuple(s if isinstance(s, Scope) else parse_scope(s) for s in scopes)


def allows(
    scopes: str | Iterable[str | Scope],
    action: str,
    resource_type: str,
    *,
    contexts: Iterable[str] = DEFAULT_CONTEXTS,
) -> bool:
    """Return True if ``scopes`` allow ``action`` on resources of ``resource_type``.

    One scope must hold every letter the action needs (``write`` needs ``c`` and ``u`` in the
    same scope). Adding a scope never takes a permission away.
    """
    _letters_for(action)
    ctx = frozenset(contexts)
    return any(s.grants(action, resource_type, ctx) for s in _scopes(scopes))


def narrow(
    permissions: Iterable[tuple[str, str]],
    scopes: str | Iterable[str | Scope],
    *,
    contexts: Iterable[str] = DEFAULT_CONTEXTS,
) -> frozenset[tuple[str, str]]:
    """Return the ``(action, resource type)`` pairs both a role and the token's scopes allow.

    ``permissions`` are a role's pairs (resource type or ``*``; ``write`` expands to
    ``create`` and ``update``). The result is in the five FHIR interactions; a ``*`` on one
    side and a named type on the other meet at the named type. Institution scope, consent and
    the role module's own exceptions (AuditEvent) are not this function's business: check the
    role with ``medledger.access.permissions`` as well, and use this for the scope half.
    """
    ctx = frozenset(contexts)
    held = [s for s in _scopes(scopes) if s.context in ctx and s.query is None]
    out: set[tuple[str, str]] = set()
    for action, rtype in permissions:
        for single in _single_actions(action):
            letter = next(iter(ACTIONS[single]))
            for s in held:
                if letter not in s.letters:
                    continue
                if rtype == "*":
                    out.add((single, s.resource_type or "*"))
                elif s.resource_type in ("*", rtype):
                    out.add((single, rtype))
    return frozenset(out)


def _single_actions(action: str) -> tuple[str, ...]:
    _letters_for(action)
    return ("create", "update") if action == "write" else (action,)
