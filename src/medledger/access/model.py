"""Who may do what: institutions, users, clients, roles and permissions (DESIGN §6).

A **permission** is ``action × resource type × institution scope``, written
``action:Resource@scope``, e.g. ``read:Observation@hosp-central``:

- action: ``read``, ``write``, ``delete``, ``search``, ``admin`` or ``audit-read``;
- resource: a FHIR resource type (``Observation``) or ``*`` (every type);
- scope: an institution id, ``*`` (group-wide), or ``own`` in the role table below, which a
  grant replaces with the institution it is granted for.

Roles and their default permissions (the one table, ``ROLE_PERMISSIONS``):

=================  ===========================================================================
role               permissions (``own`` = the scope of the grant, by default the holder's
                   institution)
=================  ===========================================================================
group_admin        ``admin:*@*`` (group-wide; granted with scope ``*`` only)
institution_admin  ``admin:*@own``
clinician          ``read``, ``search``, ``write``, ``delete`` on ``*@own`` (clinical types)
technician         ``write`` on Specimen, Observation, DiagnosticReport, ImagingStudy;
                   ``read`` and ``search`` on those and on ServiceRequest (orders); all ``@own``
integration        ``read``, ``search``, ``write``, ``delete`` on ``*@own``; a client's token scopes
                   (``system/DiagnosticReport.read``) narrow this further
auditor            ``audit-read:AuditEvent@own`` and nothing else: no clinical content
=================  ===========================================================================

``admin`` lets its holder manage principals and grants within its scope; it does not by itself
allow reading or writing clinical data. AuditEvent is reached only through ``audit-read``: a
``*`` resource never covers it for ``read``/``search``/``write``/``delete`` (see
``permissions.allows``). No role holds ``audit-read`` together with clinical ``read``, and a
user may not hold ``auditor`` beside a clinical role (``check_separation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from medledger.errors import InputError, StateError

__all__ = [
    "ANY",
    "AUDIT_RESOURCE",
    "CLINICAL_ROLES",
    "OWN",
    "ROLE_PERMISSIONS",
    "Action",
    "Client",
    "Grant",
    "Institution",
    "InstitutionKind",
    "Permission",
    "PrincipalKind",
    "Role",
    "User",
    "check_id",
    "check_separation",
    "default_scope",
    "parse_role",
]

ANY = "*"
OWN = "own"
AUDIT_RESOURCE = "AuditEvent"

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$")
_PRINCIPAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_RESOURCE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


class Role(StrEnum):
    """The six roles of DESIGN §6."""

    GROUP_ADMIN = "group_admin"
    INSTITUTION_ADMIN = "institution_admin"
    CLINICIAN = "clinician"
    TECHNICIAN = "technician"
    INTEGRATION = "integration"
    AUDITOR = "auditor"


class Action(StrEnum):
    """What a permission allows."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    SEARCH = "search"
    ADMIN = "admin"
    AUDIT_READ = "audit-read"


class InstitutionKind(StrEnum):
    """The group's central hospital (总院) or a member hospital."""

    CENTRAL = "central"
    MEMBER = "member"


class PrincipalKind(StrEnum):
    """A person (``user``) or a system's service account (``client``)."""

    USER = "user"
    CLIENT = "client"


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """``action:resource@scope``; construct through ``Permission.of`` or ``parse`` to validate."""

    action: Action
    resource: str
    scope: str

    @classmethod
    def of(cls, action: str, resource: str, scope: str) -> Permission:
        """Return a validated permission; raise InputError naming the bad part."""
        try:
            act = Action(action)
        except ValueError:
            raise InputError(
                f"unknown action {action!r}",
                field="permission.action",
                value=action,
                expected=", ".join(a.value for a in Action),
            ) from None
        if resource != ANY and not _RESOURCE.fullmatch(resource):
            raise InputError(
                f"bad resource type {resource!r}",
                field="permission.resource",
                value=resource,
                expected="a FHIR resource type such as Observation, or *",
            )
        if (act is Action.AUDIT_READ) != (resource == AUDIT_RESOURCE):
            raise InputError(
                "audit-read applies to AuditEvent, and AuditEvent only to audit-read",
                field="permission",
                value=f"{action}:{resource}",
                expected="audit-read:AuditEvent, or another action on a clinical type",
            )
        if scope not in (ANY, OWN):
            check_id(scope, "permission.scope")
        return cls(act, resource, scope)

    @classmethod
    def parse(cls, text: str) -> Permission:
        """Parse ``action:Resource@scope``."""
        action, sep1, rest = text.partition(":")
        resource, sep2, scope = rest.partition("@")
        if not (sep1 and sep2):
            raise InputError(
                f"cannot parse permission {text!r}",
                field="permission",
                value=text,
                expected="action:Resource@scope, e.g. read:Observation@hosp-central",
            )
        return cls.of(action, resource, scope)

    def __str__(self) -> str:
        return f"{self.action.value}:{self.resource}@{self.scope}"


def _perms(
    actions: tuple[Action, ...], resources: tuple[str, ...], scope: str = OWN
) -> set[Permission]:
    return {Permission(a, r, scope) for a in actions for r in resources}


_LAB_WRITES = ("Specimen", "Observation", "DiagnosticReport", "ImagingStudy")
_CLINICAL = (Action.READ, Action.SEARCH, Action.WRITE, Action.DELETE)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.GROUP_ADMIN: frozenset(_perms((Action.ADMIN,), (ANY,), ANY)),
    Role.INSTITUTION_ADMIN: frozenset(_perms((Action.ADMIN,), (ANY,))),
    Role.CLINICIAN: frozenset(_perms(_CLINICAL, (ANY,))),
    Role.TECHNICIAN: frozenset(
        _perms((Action.WRITE,), _LAB_WRITES)
        | _perms((Action.READ, Action.SEARCH), (*_LAB_WRITES, "ServiceRequest"))
    ),
    Role.INTEGRATION: frozenset(_perms(_CLINICAL, (ANY,))),
    Role.AUDITOR: frozenset(_perms((Action.AUDIT_READ,), (AUDIT_RESOURCE,))),
}
"""Each role's permissions; ``own`` is replaced by the grant's scope (see module docstring)."""

CLINICAL_ROLES = frozenset({Role.CLINICIAN, Role.TECHNICIAN, Role.INTEGRATION})
"""Roles that read clinical content; none of them may be held beside ``auditor``."""


def parse_role(text: str) -> Role:
    """Return the role named ``text``; InputError listing the roles otherwise."""
    try:
        return Role(text)
    except ValueError:
        expected = ", ".join(r.value for r in Role)
        raise InputError(
            f"unknown role {text!r}", field="role", value=text, expected=expected
        ) from None


def default_scope(role: Role) -> str:
    """Return the scope a grant of ``role`` gets when none is given: ``*`` or ``own``."""
    return ANY if role is Role.GROUP_ADMIN else OWN


def check_id(value: str, field: str) -> str:
    """Return ``value`` if it is an institution id like ``hosp-central``; else InputError."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InputError(
            f"bad {field} {value!r}",
            field=field,
            value=value,
            expected="2-64 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        )
    return value


def check_principal_id(value: str, field: str) -> str:
    """Return ``value`` if it is a user or client id like ``dr.wang`` or ``lis-01``."""
    if not isinstance(value, str) or not _PRINCIPAL_ID.fullmatch(value):
        raise InputError(
            f"bad {field} {value!r}",
            field=field,
            value=value,
            expected="1-64 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-'",
        )
    return value


def check_separation(roles: set[Role], who: str) -> None:
    """Refuse ``auditor`` beside a clinical role: auditors must never read clinical content."""
    clinical = sorted(r.value for r in roles & CLINICAL_ROLES)
    if Role.AUDITOR in roles and clinical:
        raise StateError(
            f"{who} may not hold auditor together with {', '.join(clinical)}: an auditor reads "
            "the audit trail and no clinical content (separation of duties); use two accounts",
            principal=who,
            roles=sorted(r.value for r in roles),
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """One active role grant: the role, its scope (an institution id or ``*``; ``own`` is
    resolved when granting), who granted it and when (RFC 3339)."""

    role: Role
    scope: str
    granted_by: str
    granted_at: str

    def to_json(self) -> dict[str, Any]:
        """Return the grant as JSON members (``at`` is the grant time)."""
        return {
            "role": self.role.value,
            "scope": self.scope,
            "by": self.granted_by,
            "at": self.granted_at,
        }


@dataclass(frozen=True, slots=True)
class Institution:
    """An organization in the group, with the id and public key of its signing key."""

    id: str
    name: str
    kind: InstitutionKind
    suite: str
    key_id: str
    public_key: str  # hex, in the suite's byte format
    created: str

    def to_json(self) -> dict[str, Any]:
        """Return the institution as JSON members (public key only: there is no other here)."""
        out = {f: getattr(self, f) for f in self.__slots__}
        return {**out, "kind": self.kind.value}


class _Grantee:
    """What users and clients share: role grants, and their JSON form (never a secret)."""

    __slots__ = ()
    grants: tuple[Grant, ...]

    @property
    def roles(self) -> set[Role]:
        """Return the roles held under any scope."""
        return {g.role for g in self.grants}

    def to_json(self) -> dict[str, Any]:
        """Return the account as JSON members, grants included."""
        fields: tuple[str, ...] = type(self).__slots__  # the dataclass's own fields
        out: dict[str, Any] = {f: getattr(self, f) for f in fields}
        return {**out, "grants": [g.to_json() for g in self.grants]}


@dataclass(frozen=True, slots=True)
class User(_Grantee):
    """A person who signs in with a password."""

    id: str
    institution: str
    display_name: str
    disabled: bool
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True, slots=True)
class Client(_Grantee):
    """A service account (HIS, LIS, PACS): a client secret, a public JWK, or both."""

    client_id: str
    institution: str
    display_name: str
    disabled: bool
    has_secret: bool
    jwk: dict[str, str] | None = None
    jwk_thumbprint: str | None = None
    grants: tuple[Grant, ...] = ()
