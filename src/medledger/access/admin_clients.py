"""Service accounts (HIS, LIS, PACS): register, rotate secrets, disable."""

from __future__ import annotations

from collections.abc import Sequence

from medledger.access._admin_base import AdminBase, RoleRequest, check_text, client_role, new_secret
from medledger.access.jwk import parse_public_jwk
from medledger.access.lockout import Event
from medledger.access.model import PrincipalKind, check_principal_id, check_separation
from medledger.access.permissions import check_admin_over, check_grant, grant_scope, resolve
from medledger.errors import InputError, StateError

__all__ = ["ClientAdmin"]


class ClientAdmin(AdminBase):
    """The service-account half of ``AccessAdmin``."""

    def add_client(
        self,
        client_id: str,
        institution: str,
        name: str,
        roles: Sequence[RoleRequest],
        *,
        jwk: bytes | None,
        with_secret: bool,
        actor: str | None,
    ) -> tuple[str | None, Event]:
        """Register a service account; return its new secret (shown once, stored hashed)."""
        check_principal_id(client_id, "client")
        check_text(name, "name")
        if jwk is None and not with_secret:
            raise InputError(
                "a client needs a secret or a public key",
                field="jwk",
                value=None,
                expected="--jwk FILE, or a generated secret (omit --no-secret)",
            )
        self.directory.institution(institution)
        if self.directory.get_client(client_id) is not None:
            raise StateError(f"client {client_id} already exists", client=client_id)
        concrete = [(r, grant_scope(r, s, institution)) for r, s in roles]
        by, held = self._actor(actor, bootstrap_ok=False)
        check_admin_over(held, institution, by)
        for role, scope in concrete:
            client_role(role)
            check_grant(held, resolve(role, scope), institution=institution, who=by)
        check_separation({r for r, _ in concrete}, client_id)
        key = None if jwk is None else parse_public_jwk(jwk)
        secret = new_secret() if with_secret else None
        secret_hash = None if secret is None else self.hasher.hash(secret)
        self.directory.add_client(client_id, institution, name, secret_hash, key, concrete, by)
        event = self._event(
            "client.add",
            by,
            institution,
            f"client/{client_id}",
            roles=[f"{r.value}@{s}" for r, s in concrete],
            jwk_thumbprint=None if key is None else key[1],
        )
        return secret, event

    def rotate_client_secret(self, client_id: str, actor: str | None) -> tuple[str, Event]:
        """Replace the client's secret with a new one (returned once); the old one stops working."""
        by, client = self._manage(PrincipalKind.CLIENT, client_id, actor)
        secret = new_secret()
        self.credentials.set_secret(PrincipalKind.CLIENT, client_id, self.hasher.hash(secret))
        return secret, self._event(
            "client.rotate_secret", by, client.institution, f"client/{client_id}"
        )

    def set_client_disabled(self, client_id: str, disabled: bool, actor: str | None) -> Event:
        """Disable (or re-enable) a service account."""
        by, client = self._manage(PrincipalKind.CLIENT, client_id, actor)
        self.directory.set_disabled(PrincipalKind.CLIENT, client_id, disabled)
        op = "client.disable" if disabled else "client.enable"
        return self._event(op, by, client.institution, f"client/{client_id}")
