"""Administration of the access directory, with "admins may only assign what they hold".

``AccessAdmin`` is what ``medledger admin`` and the admin API (``api.admin``) call. Every change
names its actor: a user id whose grants are checked before anything is written.

Bootstrap: while no enabled user holds ``group_admin``, the directory is in bootstrap mode.
Then (and only then) the actor may be omitted for ``add_institution`` and for ``add_user``
with exactly the role ``group_admin``: that creates the first group admin, recorded as granted
by ``bootstrap``. From then on every change needs an actor, and the last enabled group admin
can be neither disabled nor stripped of the role, so bootstrap mode cannot be re-entered.

Every change returns an event (``{"event": "access.…", "by", "at", …}``, ids only: no names,
passwords or secrets); ``ledger_entry`` turns one into an ``access.grant`` ledger entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from medledger.access import institution_keys
from medledger.access._admin_base import (
    BOOTSTRAP,
    RoleRequest,
    check_text,
    client_role,
    ledger_entry,
)
from medledger.access._sql import utc_now
from medledger.access.admin_clients import ClientAdmin
from medledger.access.admin_passwords import PasswordAdmin
from medledger.access.lockout import Event
from medledger.access.model import (
    ANY,
    Action,
    Client,
    Institution,
    InstitutionKind,
    PrincipalKind,
    Role,
    User,
    check_id,
    check_principal_id,
    check_separation,
)
from medledger.access.passwords import check_password_policy
from medledger.access.permissions import check_admin_over, check_grant, grant_scope, resolve
from medledger.errors import NotFound, PermissionDenied, StateError

__all__ = ["BOOTSTRAP", "AccessAdmin", "RoleRequest", "ledger_entry"]


class AccessAdmin(ClientAdmin, PasswordAdmin):
    """Change institutions, users, clients and grants on behalf of a checked actor."""

    # -- institutions -----------------------------------------------------------------------

    def add_institution(
        self, inst_id: str, name: str, kind: InstitutionKind, actor: str | None
    ) -> tuple[Institution, Event]:
        """Register an institution and create (or adopt) its signing key; group admins only."""
        check_id(inst_id, "institution")
        by, held = self._actor(actor, bootstrap_ok=True)
        check_admin_over(held, ANY, by)
        check_text(name, "name")
        if self.directory.get_institution(inst_id) is not None:
            raise StateError(f"institution {inst_id} already exists", institution=inst_id)
        key = institution_keys.create_or_adopt(self.data_dir, self.suite, inst_id)
        inst = Institution(inst_id, name, kind, key.suite, key.key_id, key.public_key, utc_now())
        try:
            self.directory.add_institution(inst)
        except BaseException:
            if key.created:
                key.path.unlink(missing_ok=True)
            raise
        return inst, self._event(
            "institution.add",
            by,
            inst_id,
            f"institution/{inst_id}",
            kind=kind.value,
            key_id=key.key_id,
        )

    def list_institutions(self, actor: str) -> list[Institution]:
        """Return every institution (public keys only) to an enabled admin of any scope."""
        self._admin_scopes(actor)
        return self.directory.list_institutions()

    def list_users(self, institution: str | None, actor: str) -> list[User]:
        """Return the users of the institutions ``actor`` administers (or of one of them)."""
        scopes = self._admin_scopes(actor, institution)
        found = self.directory.list_users(institution)
        return [u for u in found if ANY in scopes or u.institution in scopes]

    def list_clients(self, institution: str | None, actor: str) -> list[Client]:
        """Return the clients of the institutions ``actor`` administers (or of one of them)."""
        scopes = self._admin_scopes(actor, institution)
        found = self.directory.list_clients(institution)
        return [c for c in found if ANY in scopes or c.institution in scopes]

    def _admin_scopes(self, actor: str, institution: str | None = None) -> set[str]:
        """Return where ``actor`` holds ``admin`` (institution ids, or ``*``); refuse if nowhere.

        With ``institution``, refuse unless the actor administers that one.
        """
        by, held = self._actor(actor, bootstrap_ok=False)
        if institution is not None:
            check_admin_over(held, institution, by)
        scopes = {p.scope for p in held if p.action is Action.ADMIN}
        if not scopes:
            raise PermissionDenied(
                f"{by} holds no admin role",
                field="as",
                value=by,
                expected="a user holding group_admin or institution_admin",
            )
        return scopes

    # -- users ------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        institution: str,
        name: str,
        password: str,
        roles: Sequence[RoleRequest],
        actor: str | None,
    ) -> Event:
        """Add a user with a password (policy-checked, stored as Argon2id) and first roles."""
        check_principal_id(user_id, "user")
        check_text(name, "name")
        check_password_policy(password, user_id)
        self.directory.institution(institution)
        if self.directory.get_user(user_id) is not None:
            raise StateError(f"user {user_id} already exists", user=user_id)
        concrete = [(r, grant_scope(r, s, institution)) for r, s in roles]
        if actor is None and self.bootstrapping():
            if [r for r, _ in concrete] != [Role.GROUP_ADMIN]:
                raise PermissionDenied(
                    "no group admin exists yet: the first user must be added with "
                    "--role group_admin (and no other role)",
                    field="role",
                    value=", ".join(f"{r.value}@{sc}" for r, sc in concrete) or None,
                    expected="exactly --role group_admin",
                )
            by = BOOTSTRAP
        else:
            by, held = self._actor(actor, bootstrap_ok=False)
            check_admin_over(held, institution, by)
            for role, scope in concrete:
                check_grant(held, resolve(role, scope), institution=institution, who=by)
        check_separation({r for r, _ in concrete}, user_id)
        secret_hash = self.hasher.hash(password)
        self.directory.add_user(user_id, institution, name, secret_hash, concrete, by)
        return self._event(
            "user.add",
            by,
            institution,
            f"user/{user_id}",
            roles=[f"{r.value}@{s}" for r, s in concrete],
        )

    def set_user_disabled(self, user_id: str, disabled: bool, actor: str | None) -> Event:
        """Disable (or re-enable) a user; never the actor itself or the last group admin."""
        by, user = self._manage(PrincipalKind.USER, user_id, actor)
        if disabled and by == user_id:
            raise StateError(f"{by} may not disable their own account", user=user_id)
        if disabled and Role.GROUP_ADMIN in user.roles:  # defence in depth: only a peer gets here
            self._keep_a_group_admin(user_id)
        self.directory.set_disabled(PrincipalKind.USER, user_id, disabled)
        op = "user.disable" if disabled else "user.enable"
        return self._event(op, by, user.institution, f"user/{user_id}")

    def unlock(self, kind: PrincipalKind, principal: str, actor: str | None) -> Event:
        """Clear a lockout (the credential store emits the audit event for the unlock)."""
        by, found = self._manage(kind, principal, actor)
        self.credentials.unlock(kind, principal, by)
        return self._event("credential.unlock", by, found.institution, f"{kind.value}/{principal}")

    # -- grants -----------------------------------------------------------------------------

    def grant(
        self, kind: PrincipalKind, principal: str, role: Role, scope: str, actor: str | None
    ) -> Event:
        """Grant ``role`` at ``scope``; the actor must hold what it grants, and not to itself."""
        home = self._home(kind, principal)
        concrete = grant_scope(role, scope, home)
        by, held = self._actor(actor, bootstrap_ok=False)
        if kind is PrincipalKind.USER and by == principal:
            raise PermissionDenied(
                f"{by} may not grant roles to themselves",
                field="as",
                value=by,
                expected="another admin",
            )
        check_grant(held, resolve(role, concrete), institution=home, who=by)
        current = self._roles(kind, principal)
        if kind is PrincipalKind.CLIENT:
            client_role(role)
        check_separation(current | {role}, principal)
        self.directory.add_grant(kind, principal, role, concrete, by)
        return self._event(
            "role.grant", by, home, f"{kind.value}/{principal}", role=role.value, scope=concrete
        )

    def revoke(
        self, kind: PrincipalKind, principal: str, role: Role, scope: str, actor: str | None
    ) -> Event:
        """Revoke an active grant; the actor must be able to grant it, and one group admin stays."""
        home = self._home(kind, principal)
        concrete = grant_scope(role, scope, home)
        by, held = self._actor(actor, bootstrap_ok=False)
        check_grant(held, resolve(role, concrete), institution=home, who=by)
        if kind is PrincipalKind.USER and role is Role.GROUP_ADMIN:
            self._keep_a_group_admin(principal)
        if not self.directory.revoke_grant(kind, principal, role, concrete, by):
            raise NotFound(
                f"{principal} holds no {role.value} grant with scope {concrete}",
                field="role",
                value=f"{role.value}@{concrete}",
                expected="an active grant, as `medledger admin user list` shows",
            )
        return self._event(
            "role.revoke", by, home, f"{kind.value}/{principal}", role=role.value, scope=concrete
        )
