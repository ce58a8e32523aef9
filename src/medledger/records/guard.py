"""The records layer's view of access control: a per-request guard it consults and informs.

``RecordService`` calls the guard before every read and write and applies its ``Visibility``
to every search; the access layer implements it for an authenticated caller
(``access.decide.CallerGuard``). The guard also collects the refs and patient pseudonyms a
request touched, which the audit trail records. ``SystemGuard`` is the guard of the node itself
(CLI, recovery, demo seeding): everything is visible and new records belong to the node.
"""

from __future__ import annotations

from typing import Protocol

from medledger.records.visibility import EVERYTHING, Facts, Visibility

__all__ = ["DELETE", "READ", "SEARCH", "WRITE", "Guard", "SystemGuard"]

READ = "read"
SEARCH = "search"
WRITE = "write"
DELETE = "delete"


class Guard(Protocol):
    """What ``RecordService`` needs from access control for one request."""

    @property
    def institution(self) -> str:
        """The institution that owns what this request creates."""
        ...

    def visibility(self, action: str, rtype: str) -> Visibility:
        """The records of ``rtype`` the caller may ``action`` (search, read); PermissionDenied
        if it may not ``action`` that type at all."""
        ...

    def check(self, action: str, rtype: str, rid: str | None, facts: Facts | None) -> None:
        """Allow ``action`` on ``rtype/rid`` (``facts`` None: it does not exist yet) or raise
        PermissionDenied saying why."""
        ...

    def touched(self, ref: str, subject: str, owner: str | None = None) -> None:
        """Note a resource version (its patient pseudonym, and the institution that owns it)
        the request read or wrote."""
        ...


class SystemGuard:
    """The node acting for itself: no restriction; records owned by ``institution``."""

    def __init__(self, institution: str) -> None:
        self._institution = institution

    @property
    def institution(self) -> str:
        return self._institution

    def visibility(self, action: str, rtype: str) -> Visibility:
        return EVERYTHING

    def check(self, action: str, rtype: str, rid: str | None, facts: Facts | None) -> None:
        return None

    def touched(self, ref: str, subject: str, owner: str | None = None) -> None:
        return None
