"""Passwords after the account exists: an admin's reset and the user's own change.

Either way the new password passes the policy, is stored only as Argon2id, clears any lockout,
and ends every sign-in of the user (their refresh-token families are revoked, and with them
the access tokens issued from them), so a reset after a suspected compromise locks the old
sessions out at once. The returned event is anchored and audited like every other change.
"""

from __future__ import annotations

import time

from medledger.access._admin_base import AdminBase
from medledger.access.lockout import Event
from medledger.access.model import PrincipalKind
from medledger.access.passwords import check_password_policy
from medledger.access.token_store import SqlRefreshStore
from medledger.errors import InputError

__all__ = ["PasswordAdmin"]


class PasswordAdmin(AdminBase):
    """Set a user's password: ``reset_password`` (an admin) or ``change_password`` (the user)."""

    def reset_password(self, user_id: str, password: str, actor: str | None) -> Event:
        """Set a new password for ``user_id`` on an admin's authority (who must be able to
        manage the account: admin over its institution, holding all it holds)."""
        by, user = self._manage(PrincipalKind.USER, user_id, actor)
        ended = self._set(user_id, password)
        return self._event(
            "user.password.reset", by, user.institution, f"user/{user_id}", sessions=str(ended)
        )

    def change_password(self, user_id: str, current: str, password: str) -> Event:
        """The user's own change, once the caller has verified ``current`` as a sign-in does
        (``TokenService.verify_password``); the new password must differ from it."""
        if password == current:
            raise InputError(
                "the new password is the current one",
                field="new_password",
                expected="a password different from the current one",
            )
        user = self._user(user_id)
        ended = self._set(user_id, password)
        return self._event(
            "user.password.change", user_id, user.institution, f"user/{user_id}",
            sessions=str(ended),
        )  # fmt: skip

    def _set(self, user_id: str, password: str) -> int:
        check_password_policy(password, user_id)
        self.credentials.set_secret(PrincipalKind.USER, user_id, self.hasher.hash(password))
        return SqlRefreshStore(self.directory.engine).revoke_subject(
            PrincipalKind.USER, user_id, int(time.time())
        )
