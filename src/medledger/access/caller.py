"""Who is asking: the authenticated principal of one request, as every layer sees it.

The API builds a ``Caller`` from a verified access token and the principal's current grants
(read on every request, so a revoked grant or a disabled account takes effect at once). The
authorization decisions (``access.decide``) and the audit trail (``access.audit_trail``) read
only this object, never the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from medledger.access.model import Permission, PrincipalKind
from medledger.access.scopes import Scope

__all__ = ["ANONYMOUS", "PURPOSE_BREAK_GLASS", "PURPOSE_TREAT", "Caller"]

PURPOSE_TREAT = "TREAT"
"""HL7 v3 ActReason: treatment, the purpose assumed when a request states none."""
PURPOSE_BREAK_GLASS = "BTG"
"""HL7 v3 ActReason: break the glass (emergency access with a stated reason)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal behind one request.

    ``institution`` is the institution the principal acts for (its home institution);
    ``permissions`` its effective permissions (roles resolved); ``scopes`` the SMART scopes of
    its token, which narrow ``permissions`` further; ``token_id`` the token's ``jti``;
    ``break_glass`` the stated reason when the request invoked break-glass; ``purpose`` the
    purpose of use (HL7 v3 ActReason code) the request declared.
    """

    kind: PrincipalKind | None
    principal: str
    institution: str
    roles: tuple[str, ...] = ()
    permissions: frozenset[Permission] = frozenset()
    scopes: tuple[Scope, ...] = ()
    token_id: str | None = None
    client_id: str | None = None
    address: str | None = None
    purpose: str = PURPOSE_TREAT
    break_glass: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether a valid token identified the caller."""
        return self.kind is not None


ANONYMOUS = Caller(kind=None, principal="anonymous", institution="")
"""A request without a valid token (public endpoints, and the audit of refused requests)."""
