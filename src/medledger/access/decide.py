"""Authorization decisions for one caller: roles, token scopes, sharing, consent, break-glass.

For an action on a record of type T owned by institution O, a caller of institution A is
allowed when, in this order:

1. its token's SMART scopes allow the action on T (``scope``), else 403;
2. its roles allow the action on T of O (``grant``: its own institution's records, or a
   grant scoped to O or to the whole group), else
3. its roles allow the action on T of A (the capability), and the record is admitted by
   a rule of the group sharing policy (``sharing:<rule>``), by an active Consent
   (``consent``), or the request invoked break-glass with a reason (``break-glass``; read and
   search only).

Everything else is a 403 whose message says which step failed. Searches apply the same rule
as a SQL condition (``records.visibility``), so they never return, page over or count a
record a read of it would refuse. The guard notes every basis it used and every record it
let through, for the request's audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.access.caller import Caller
from medledger.access.consent import ConsentIndex
from medledger.access.model import ANY, Action
from medledger.access.permissions import allows
from medledger.access.scopes import allows as scope_allows
from medledger.access.sharing import SharingPolicy
from medledger.errors import PermissionDenied
from medledger.records.guard import READ, SEARCH, WRITE
from medledger.records.visibility import EVERYTHING, Facts, Visibility

__all__ = ["BREAK_GLASS_ACTIONS", "MAX_NOTED", "CallerGuard"]

BREAK_GLASS_ACTIONS = frozenset({READ, SEARCH})
MAX_NOTED = 100
"""At most this many refs are kept per request (a search page of 1,000 notes the count)."""


@dataclass
class CallerGuard:
    """The ``records.guard.Guard`` of one authenticated request."""

    caller: Caller
    policy: SharingPolicy
    consents: ConsentIndex
    refs: list[str] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    bases: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)  # other institutions whose records it touched
    touched_count: int = 0

    @property
    def institution(self) -> str:
        return self.caller.institution

    # -- the Guard protocol ------------------------------------------------------------------

    def visibility(self, action: str, rtype: str) -> Visibility:
        act = Action(action)
        self._check_scope(action, rtype)
        held = self.caller.permissions
        if allows(held, act, rtype, ANY):
            self.bases.add("grant")
            return EVERYTHING
        if not allows(held, act, rtype, self.institution):
            raise self._no_role(action, rtype, self.institution)
        if self.caller.break_glass is not None and action in BREAK_GLASS_ACTIONS:
            self.bases.add("break-glass")
            return EVERYTHING
        owners = frozenset(p.scope for p in held if allows([p], act, rtype, p.scope))
        return Visibility(
            owners=owners - {ANY},
            member=self.institution,
            shared=self.policy.shared(act, rtype),
            consented=self.consents.admitted(self.institution, self.caller.purpose)
            if action in BREAK_GLASS_ACTIONS
            else frozenset(),
        )

    def check(self, action: str, rtype: str, rid: str | None, facts: Facts | None) -> None:
        act = Action(action)
        scope_action = action
        if action == WRITE:
            scope_action = "create" if facts is None else "update"
        self._check_scope(scope_action, rtype)
        held = self.caller.permissions
        owner = facts.owner if facts is not None else self.institution
        if allows(held, act, rtype, owner):
            self.bases.add("grant")
            return
        if not allows(held, act, rtype, self.institution):
            raise self._no_role(action, rtype, owner)
        assert facts is not None  # a new record is owned by the caller's institution
        vis = Visibility(member=self.institution, shared=self.policy.shared(act, rtype))
        basis = vis.basis(facts)
        if basis is None and action == READ:  # Consents are looked up only when needed
            consented = self.consents.admitted(self.institution, self.caller.purpose)
            basis = Visibility(consented=consented).basis(facts)
        if basis is not None:
            self.bases.add(basis)
            return
        if self.caller.break_glass is not None and action in BREAK_GLASS_ACTIONS:
            self.bases.add("break-glass")
            return
        ref = f"{rtype}/{rid}" if rid else rtype
        if rid:
            self.touched(ref, facts.subject, owner)  # the audit event names what was refused
        self.bases.add("denied")
        raise PermissionDenied(
            f"{ref} belongs to {owner}; {self.institution} may {action} it only under a group "
            "sharing rule, an active Consent of the patient, or break-glass, and none applies",
            field="resource",
            value=ref,
            expected="a sharing rule, an active Consent, or the X-Break-Glass header (read only)",
        )

    def touched(self, ref: str, subject: str, owner: str | None = None) -> None:
        self.touched_count += 1
        if owner and owner != self.institution:
            self.owners.add(owner)
        if len(self.refs) < MAX_NOTED:
            self.refs.append(ref)
            self.patients.add(subject)

    # -- helpers -----------------------------------------------------------------------------

    def _check_scope(self, action: str, rtype: str) -> None:
        if not scope_allows(self.caller.scopes, action, rtype):
            granted = " ".join(s.text for s in self.caller.scopes) or "(none)"
            raise PermissionDenied(
                f"the token's scopes do not allow {action} on {rtype}",
                field="scope",
                value=granted,
                expected=f"a scope such as user/{rtype}.{action[0]} or system/{rtype}.*",
            )

    def _no_role(self, action: str, rtype: str, owner: str) -> PermissionDenied:
        roles = ", ".join(self.caller.roles) or "no role"
        return PermissionDenied(
            f"{self.caller.principal} ({roles}) may not {action} {rtype} of {owner}",
            field="permission",
            value=f"{action}:{rtype}@{owner}",
            expected=f"a role granting {action}:{rtype}@{owner}",
        )
