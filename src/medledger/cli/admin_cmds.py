"""``medledger admin``: institutions, users, service accounts and role grants.

Every change runs as a named admin (``--as ADMIN``) and may only assign what that admin holds.
Bootstrap: while no group admin exists, ``institution add`` works without ``--as`` and
``user add ID … --role group_admin`` creates the first group admin. Changes take the data
directory's writer lock (so they refuse while ``medledger serve`` runs) and are anchored on
the ledger as ``access.grant`` entries.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from medledger.cli.output import handle_errors, out_console, print_json
from medledger.errors import InputError

if TYPE_CHECKING:
    from medledger.access.admin import AccessAdmin
    from medledger.access.lockout import Event
    from medledger.access.model import Role
    from medledger.ledger.node import LedgerNode

DEFAULT_DATA = Path("medledger-data")
Data = Annotated[Path, typer.Option("--data", "-d", help="Ledger data directory.")]
As = Annotated[
    str | None,
    typer.Option("--as", help="The acting admin's user id (needed once a group admin exists)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Roles = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="ROLE or ROLE@SCOPE (SCOPE: own, an institution id, or * for group-wide); repeatable.",
    ),
]
Scope = Annotated[
    str | None,
    typer.Option(help="own (the holder's institution), an institution id, or * (group-wide)."),
]
IsClient = Annotated[bool, typer.Option("--client", help="The principal is a client id.")]


def _typer(text: str) -> typer.Typer:
    return typer.Typer(help=text, no_args_is_help=True, rich_markup_mode=None)


admin_app = _typer(
    "Institutions, users, service accounts and roles. Changes need --as ADMIN, who may only "
    "assign what they hold; bootstrap the first group admin with `admin user add ID "
    "--institution INST --name NAME --role group_admin` (no --as)."
)
institution_app = _typer("Institutions of the group and their signing keys.")
user_app = _typer("People who sign in with a password.")
role_app = _typer("Grant and revoke roles.")
client_app = _typer("Service accounts (HIS, LIS, PACS) that sign in as systems.")


def register(app: typer.Typer) -> None:
    """Add the ``admin`` group to ``app``."""
    admin_app.add_typer(institution_app, name="institution")
    admin_app.add_typer(user_app, name="user")
    admin_app.add_typer(role_app, name="role")
    admin_app.add_typer(client_app, name="client")
    app.add_typer(admin_app, name="admin")


@contextmanager
def _admin(data: Path, *, write: bool = True) -> Iterator[tuple[AccessAdmin, LedgerNode]]:
    from medledger.access.admin import AccessAdmin
    from medledger.ledger.node import LedgerNode

    with LedgerNode.open(data) as node:
        if write:
            node.acquire_writer()
        yield AccessAdmin.open(node.store.engine, node.data_dir, node.suite), node


def _done(node: LedgerNode, event: Event, message: str) -> None:
    from medledger.access.admin_ledger import anchor, audit_offline

    index = anchor(node, event)
    audit_offline(node, event)
    out_console.print(f"{message} (ledger entry {index})", markup=False)


def _roles(values: list[str] | None) -> list[tuple[Role, str]]:
    from medledger.access.admin_ledger import role_request

    return [role_request(value) for value in values or []]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _cell(name: str, value: Any) -> str:
    if name == "grants":
        return ", ".join(f"{g['role']}@{g['scope']}" for g in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def _show(rows: list[dict[str, Any]], json_out: bool, *, blocks: bool = False) -> None:
    """Print ``rows`` as JSON, as a table, or (``blocks``, for long values) one block each."""
    if json_out:
        print_json(rows)
        return
    if not rows:
        out_console.print("(none)", markup=False)
        return
    if blocks:
        for row in rows:
            first, *rest = row.items()
            lines = [str(first[1])] + [f"  {k:<12} {_cell(k, v)}" for k, v in rest]
            out_console.print("\n".join(lines), markup=False, overflow="ignore", crop=False)
        return
    table = Table(*(Column(k, overflow="fold") for k in rows[0]))
    for row in rows:
        table.add_row(*(_cell(k, v) for k, v in row.items()))
    out_console.print(table)


# -- institutions ---------------------------------------------------------------------------


@institution_app.command("add")
@handle_errors
def institution_add(
    institution_id: Annotated[str, typer.Argument(help="Id such as hosp-central.")],
    name: Annotated[str, typer.Option(help="Display name, e.g. 市中心医院.")],
    kind: Annotated[str, typer.Option(help="central or member.")] = "member",
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Register an institution and create its signing key (DATA/institutions/ID.key, 0600)."""
    from medledger.access.model import InstitutionKind

    try:
        chosen = InstitutionKind(kind)
    except ValueError:
        raise InputError(
            f"unknown kind {kind!r}", field="kind", value=kind, expected="central or member"
        ) from None
    with _admin(data) as (admin, node):
        inst, event = admin.add_institution(institution_id, name, chosen, actor)
        _done(node, event, f"institution {inst.id} added; key {inst.key_id} ({inst.suite})")


@institution_app.command("list")
@handle_errors
def institution_list(json_out: Json = False, data: Data = DEFAULT_DATA) -> None:
    """List institutions with their key ids and public keys (never a private key)."""
    with _admin(data, write=False) as (admin, _):
        found = admin.directory.list_institutions()
    _show([i.to_json() for i in found], json_out, blocks=True)


# -- users ----------------------------------------------------------------------------------


@user_app.command("add")
@handle_errors
def user_add(
    user_id: Annotated[str, typer.Argument(help="Sign-in id such as dr.wang.")],
    institution: Annotated[str, typer.Option(help="The user's institution id.")],
    name: Annotated[str, typer.Option(help="Display name (staff, never patient data).")],
    role: Roles = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Add a user; the password is prompted for (or read with --password-stdin), never an
    argument. It needs 12+ characters and is stored only as an Argon2id hash."""
    roles = _roles(role)
    password = _password(password_stdin)
    with _admin(data) as (admin, node):
        event = admin.add_user(user_id, institution, name, password, roles, actor)
        shown = ", ".join(event["roles"]) or "no roles"
        _done(node, event, f"user {user_id} added to {institution} ({shown})")


@user_app.command("set-password")
@handle_errors
def user_set_password(
    user_id: Annotated[str, typer.Argument()],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Reset a user's password (prompted for, or read with --password-stdin): clears any
    lockout and ends every sign-in of the user. Users change their own at POST /auth/password."""
    password = _password(password_stdin)
    with _admin(data) as (admin, node):
        event = admin.reset_password(user_id, password, actor)
        _done(node, event, f"password of {user_id} reset; {event['sessions']} sign-in(s) ended")


@user_app.command("list")
@handle_errors
def user_list(
    institution: Annotated[str | None, typer.Option(help="Only this institution.")] = None,
    json_out: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """List users with their active roles."""
    with _admin(data, write=False) as (admin, _):
        found = admin.directory.list_users(institution)
    _show([u.to_json() for u in found], json_out)


def _set_disabled(user_id: str, disabled: bool, actor: str | None, data: Path) -> None:
    with _admin(data) as (admin, node):
        event = admin.set_user_disabled(user_id, disabled, actor)
        _done(node, event, f"user {user_id} {'disabled' if disabled else 'enabled'}")


@user_app.command("disable")
@handle_errors
def user_disable(
    user_id: Annotated[str, typer.Argument()], actor: As = None, data: Data = DEFAULT_DATA
) -> None:
    """Disable a user: sign-in is refused from now on (grants are kept)."""
    _set_disabled(user_id, True, actor, data)


@user_app.command("enable")
@handle_errors
def user_enable(
    user_id: Annotated[str, typer.Argument()], actor: As = None, data: Data = DEFAULT_DATA
) -> None:
    """Re-enable a disabled user."""
    _set_disabled(user_id, False, actor, data)


@user_app.command("unlock")
@handle_errors
def user_unlock(
    user_id: Annotated[str, typer.Argument()], actor: As = None, data: Data = DEFAULT_DATA
) -> None:
    """Clear a sign-in lockout after repeated failures."""
    from medledger.access.model import PrincipalKind

    with _admin(data) as (admin, node):
        event = admin.unlock(PrincipalKind.USER, user_id, actor)
        _done(node, event, f"user {user_id} unlocked")


# -- roles ----------------------------------------------------------------------------------


def _change_role(grant: bool, principal: str, role: str, scope: str | None, client: bool,
                 actor: str | None, data: Path) -> None:  # fmt: skip
    from medledger.access.model import PrincipalKind, default_scope, parse_role

    kind = PrincipalKind.CLIENT if client else PrincipalKind.USER
    chosen = parse_role(role)
    with _admin(data) as (admin, node):
        change = admin.grant if grant else admin.revoke
        event = change(kind, principal, chosen, scope or default_scope(chosen), actor)
        verb = "granted to" if grant else "revoked from"
        _done(node, event, f"{chosen.value}@{event['scope']} {verb} {kind.value} {principal}")


@role_app.command("grant")
@handle_errors
def role_grant(
    principal: Annotated[str, typer.Argument(help="User id (or client id with --client).")],
    role: Annotated[str, typer.Argument(help="group_admin, institution_admin, clinician, …")],
    scope: Scope = None,
    client: IsClient = False,
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Grant a role; refused unless --as holds everything the role allows at that scope."""
    _change_role(True, principal, role, scope, client, actor, data)


@role_app.command("revoke")
@handle_errors
def role_revoke(
    principal: Annotated[str, typer.Argument(help="User id (or client id with --client).")],
    role: Annotated[str, typer.Argument(help="The role to revoke.")],
    scope: Scope = None,
    client: IsClient = False,
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Revoke a role grant (the last enabled group admin keeps theirs)."""
    _change_role(False, principal, role, scope, client, actor, data)


# -- clients --------------------------------------------------------------------------------


@client_app.command("add")
@handle_errors
def client_add(
    client_id: Annotated[str, typer.Argument(help="Client id such as lis-01.")],
    institution: Annotated[str, typer.Option(help="The institution the system belongs to.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    role: Roles = None,
    jwk: Annotated[
        Path | None, typer.Option(help="Public JWK file, for private-key JWT sign-in.")
    ] = None,
    secret: Annotated[
        bool | None,
        typer.Option(
            "--secret/--no-secret", help="Generate a client secret (default: only without --jwk)."
        ),
    ] = None,
    actor: As = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Register a service account. A generated secret is printed once; only its hash is kept."""
    roles = _roles(role or ["integration"])
    raw = None if jwk is None else jwk.read_bytes()
    with_secret = secret if secret is not None else jwk is None
    with _admin(data) as (admin, node):
        new_secret, event = admin.add_client(
            client_id,
            institution,
            name or client_id,
            roles,
            jwk=raw,
            with_secret=with_secret,
            actor=actor,
        )
        _done(
            node, event, f"client {client_id} added to {institution} ({', '.join(event['roles'])})"
        )
    if new_secret is not None:
        out_console.print(
            f"client secret (shown only now; store it safely): {new_secret}", markup=False
        )


@client_app.command("rotate-secret")
@handle_errors
def client_rotate(
    client_id: Annotated[str, typer.Argument()], actor: As = None, data: Data = DEFAULT_DATA
) -> None:
    """Replace a client's secret; the old one stops working at once. Printed once."""
    with _admin(data) as (admin, node):
        new_secret, event = admin.rotate_client_secret(client_id, actor)
        _done(node, event, f"client {client_id}: secret replaced")
    out_console.print(
        f"client secret (shown only now; store it safely): {new_secret}", markup=False
    )


@client_app.command("disable")
@handle_errors
def client_disable(
    client_id: Annotated[str, typer.Argument()], actor: As = None, data: Data = DEFAULT_DATA
) -> None:
    """Disable a service account: it can no longer sign in."""
    with _admin(data) as (admin, node):
        event = admin.set_client_disabled(client_id, True, actor)
        _done(node, event, f"client {client_id} disabled")


@client_app.command("list")
@handle_errors
def client_list(
    institution: Annotated[str | None, typer.Option(help="Only this institution.")] = None,
    json_out: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """List service accounts: roles, whether a secret is set, the JWK thumbprint."""
    with _admin(data, write=False) as (admin, _):
        found = admin.directory.list_clients(institution)
    _show([c.to_json() for c in found], json_out)
