"""Identity and access: institutions, users, service accounts, roles, permissions, sign-in.

- ``model``: roles, permissions (action × resource type × institution scope), the entities,
  and the one table of each role's default permissions;
- ``permissions``: the algebra (resolve a grant, ``allows``, and "admins may only assign what
  they hold");
- ``passwords``: Argon2id hashing and the password policy; ``lockout``: back-off after
  repeated failures, as audit events;
- ``directory`` / ``credentials``: the SQL-backed directory and the sign-in check;
- ``institution_keys``: each institution's signing key file; ``jwk``: clients' public keys;
- ``admin`` (with ``admin_clients``): the administration service the CLI and API call.

This package may import crypto, store, ledger and errors; never api, records or cli.
"""
