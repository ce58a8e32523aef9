"""Identity and access: institutions, users, service accounts, roles, permissions, sign-in.

- ``model``: roles, permissions (action × resource type × institution scope), the entities,
  and the one table of each role's default permissions;
- ``permissions``: the algebra (resolve a grant, ``allows``, and "admins may only assign what
  they hold");
- ``passwords``: Argon2id hashing and the password policy; ``lockout``: back-off after
  repeated failures, as audit events;
- ``directory`` / ``credentials``: the SQL-backed directory and the sign-in check;
- ``institution_keys``: each institution's signing key file; ``jwk``: clients' public keys;
- ``admin`` (with ``admin_clients``): the administration service the CLI and API call;
- ``tokens``/``token_service``: OAuth2 tokens (``/auth/token``), bearer authentication;
- ``caller``, ``decide``, ``sharing``, ``consent``: who is asking and what they may see
  across institutions (roles, SMART scopes, the group sharing policy, Consent, break-glass);
- ``audit_*``: the audit trail (an event per request, batched onto the ledger).

This package may import crypto, store, ledger, records and errors; never api or cli (records
never imports access: it consults the ``records.guard.Guard`` this package implements).
"""
