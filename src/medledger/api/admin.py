"""The admin API at /api/v1/admin: what ``medledger admin`` does, over HTTP, as the caller.

Every route acts as the authenticated caller (``request.state.caller``, set by the security
layer from the bearer token): a *user* whose token holds an admin role; ``AccessAdmin`` then
checks the actor's current grants ("admins may only assign what they hold") exactly as for
the CLI's ``--as``. Service accounts never administer. Each change is anchored on the ledger
as an ``access.grant`` entry (``access.admin_ledger.anchor``) before the answer, which names
the entry. Listings show only the institutions the caller administers.

Bodies are JSON, size-limited and checked against ``api.admin_schemas`` (400 naming the
field); a refusal is 403, an unknown account 404, a conflict 409, in the native error
envelope. A generated client secret is in the answer once, with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from medledger.access.admin import AccessAdmin
from medledger.access.admin_ledger import anchor, role_request
from medledger.access.caller import Caller
from medledger.access.lockout import Event
from medledger.access.model import (
    ROLE_PERMISSIONS,
    Action,
    InstitutionKind,
    PrincipalKind,
    default_scope,
    parse_role,
)
from medledger.api.admin_schemas import (
    Change,
    ClientCreate,
    ClientCreated,
    InstitutionCreate,
    InstitutionCreated,
    PasswordReset,
    RoleChange,
    RoleInfo,
    SecretIssued,
    UserCreate,
    validated,
)
from medledger.api.bodies import read_body
from medledger.api.schemas import ErrorResponse
from medledger.crypto.canonical import parse_json_object
from medledger.errors import AuthenticationFailed, MalformedDocument, PermissionDenied

if TYPE_CHECKING:
    from medledger.ledger.node import LedgerNode

__all__ = ["caller_of", "router"]

JSON = "application/json"
PREFIX = "/api/v1/admin"
ADMIN_THREADS = 4  # adding a user hashes a password (~100 ms, 64 MiB)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Body = TypeVar("Body", bound=BaseModel)


def caller_of(request: Request) -> Caller:
    """Return the request's authenticated caller; ``AuthenticationFailed`` if there is none."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller) or not caller.authenticated:
        raise AuthenticationFailed("this route needs a bearer token")
    return caller


def _actor(request: Request) -> str:
    """Return the acting admin's user id; 403 for a service account or a non-admin token."""
    caller = caller_of(request)
    if caller.kind is not PrincipalKind.USER:
        raise PermissionDenied(
            "service accounts cannot administer the directory",
            field="caller",
            value=caller.principal,
            expected="a user holding an admin role",
        )
    if not any(p.action is Action.ADMIN for p in caller.permissions):
        raise PermissionDenied(
            f"{caller.principal}'s token holds no admin role",
            field="caller",
            value=caller.principal,
            expected="a token of a user holding group_admin or institution_admin",
        )
    return caller.principal


def _doc(model: type[BaseModel] | None, status: int = 200) -> dict[str, Any]:
    """OpenAPI for a route: its JSON request body (if any) and its answers."""
    errors = {
        code: {"model": ErrorResponse, "description": what}
        for code, what in (
            (400, "A bad body or parameter; details.field names it."),
            (401, "No valid bearer token."),
            (403, "The caller may not do this (not an admin, or beyond what it holds)."),
            (404, "No such institution, user or client."),
            (409, "The change conflicts with the directory (exists already, last group admin)."),
        )
    }
    out: dict[str, Any] = {"responses": errors, "status_code": status}
    if model is not None:
        out["openapi_extra"] = {
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": model.model_json_schema()}},
            }
        }
    return out


def router(admin: AccessAdmin, ledger: LedgerNode, *, max_body: int) -> APIRouter:
    """Build the /api/v1/admin routes over ``admin``, anchoring changes on ``ledger``."""
    r = APIRouter(prefix=PREFIX, tags=["admin"])
    limiter: list[anyio.CapacityLimiter] = []

    async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(ADMIN_THREADS))
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=limiter[0])

    async def _body(request: Request, model: type[Body]) -> Body:
        raw = await read_body(request, max_body, (JSON,))
        return validated(model, parse_json_object(raw, field="body", error=MalformedDocument))

    def _anchored(event: Event, **more: Any) -> dict[str, Any]:
        return {**more, "event": event, "ledger_index": anchor(ledger, event)}

    async def _change(fn: Any, *args: Any, **kwargs: Any) -> JSONResponse:
        """Make one change (which returns its event) and anchor it, on a worker thread."""
        return JSONResponse(await _run(lambda: _anchored(fn(*args, **kwargs))))

    # -- institutions ------------------------------------------------------------------------

    @r.get("/institutions", **_doc(None))
    async def list_institutions(request: Request) -> JSONResponse:
        """List institutions with their key ids and public keys."""
        found = await _run(admin.list_institutions, _actor(request))
        return JSONResponse([i.to_json() for i in found])

    @r.post("/institutions", response_model=InstitutionCreated, **_doc(InstitutionCreate, 201))
    async def add_institution(request: Request) -> JSONResponse:
        """Register an institution and create its signing key (group admins only)."""
        actor, body = _actor(request), await _body(request, InstitutionCreate)

        def work() -> dict[str, Any]:
            kind = InstitutionKind(body.kind)
            inst, event = admin.add_institution(body.id, body.name, kind, actor)
            return _anchored(event, institution=inst.to_json())

        return JSONResponse(await _run(work), status_code=201)

    # -- users -------------------------------------------------------------------------------

    @r.get("/users", **_doc(None))
    async def list_users(request: Request, institution: str | None = None) -> JSONResponse:
        """List the users of the institutions the caller administers, with active roles."""
        found = await _run(admin.list_users, institution, _actor(request))
        return JSONResponse([u.to_json() for u in found])

    @r.post("/users", response_model=Change, **_doc(UserCreate, 201))
    async def add_user(request: Request) -> JSONResponse:
        """Add a user with a password (policy-checked, stored as Argon2id) and roles."""
        actor, body = _actor(request), await _body(request, UserCreate)
        roles = [role_request(text) for text in body.roles]
        change = partial(admin.add_user, body.id, body.institution, body.name, body.password)
        answer = await _run(lambda: _anchored(change(roles, actor)))
        return JSONResponse(answer, status_code=201)

    def user_switch(op: str, disabled: bool) -> None:
        @r.post(f"/users/{{user_id}}/{op}", name=f"{op}_user", response_model=Change, **_doc(None))
        async def set_user(request: Request, user_id: str) -> JSONResponse:
            """Disable a user (refused from the next request on), or re-enable one."""
            return await _change(admin.set_user_disabled, user_id, disabled, _actor(request))

    user_switch("disable", True)
    user_switch("enable", False)

    @r.post("/users/{user_id}/unlock", response_model=Change, **_doc(None))
    async def unlock_user(request: Request, user_id: str) -> JSONResponse:
        """Clear a sign-in lockout after repeated failures."""
        return await _change(admin.unlock, PrincipalKind.USER, user_id, _actor(request))

    @r.post("/users/{user_id}/password", response_model=Change, **_doc(PasswordReset))
    async def reset_password(request: Request, user_id: str) -> JSONResponse:
        """Reset a user's password: clears any lockout and ends every sign-in of the user."""
        actor, body = _actor(request), await _body(request, PasswordReset)
        return await _change(admin.reset_password, user_id, body.password, actor)

    # -- clients -----------------------------------------------------------------------------

    @r.get("/clients", **_doc(None))
    async def list_clients(request: Request, institution: str | None = None) -> JSONResponse:
        """List service accounts: roles, whether a secret is set, the JWK thumbprint."""
        found = await _run(admin.list_clients, institution, _actor(request))
        return JSONResponse([c.to_json() for c in found])

    @r.post("/clients", response_model=ClientCreated, **_doc(ClientCreate, 201))
    async def add_client(request: Request) -> JSONResponse:
        """Register a service account; a generated secret is in this answer only."""
        actor, body = _actor(request), await _body(request, ClientCreate)
        roles = [role_request(text) for text in body.roles]
        jwk = None if body.jwk is None else json.dumps(body.jwk).encode()

        def work() -> dict[str, Any]:
            secret, event = admin.add_client(
                body.id,
                body.institution,
                body.name or body.id,
                roles,
                jwk=jwk,
                with_secret=body.secret if body.secret is not None else jwk is None,
                actor=actor,
            )
            client = admin.directory.get_client(body.id)
            shown = None if client is None else client.to_json()
            return _anchored(event, client=shown, client_secret=secret)

        return JSONResponse(await _run(work), status_code=201, headers=NO_STORE)

    @r.post("/clients/{client_id}/rotate-secret", response_model=SecretIssued, **_doc(None))
    async def rotate_secret(request: Request, client_id: str) -> JSONResponse:
        """Replace a client's secret; the old one stops working at once."""
        actor = _actor(request)

        def work() -> dict[str, Any]:
            secret, event = admin.rotate_client_secret(client_id, actor)
            return _anchored(event, client_secret=secret)

        return JSONResponse(await _run(work), headers=NO_STORE)

    def client_switch(op: str, disabled: bool) -> None:
        @r.post(
            f"/clients/{{client_id}}/{op}", name=f"{op}_client", response_model=Change, **_doc(None)
        )
        async def set_client(request: Request, client_id: str) -> JSONResponse:
            """Disable a service account (its tokens stop working at once), or re-enable it."""
            return await _change(admin.set_client_disabled, client_id, disabled, _actor(request))

    client_switch("disable", True)
    client_switch("enable", False)

    @r.post("/clients/{client_id}/unlock", response_model=Change, **_doc(None))
    async def unlock_client(request: Request, client_id: str) -> JSONResponse:
        """Clear a client-secret lockout."""
        return await _change(admin.unlock, PrincipalKind.CLIENT, client_id, _actor(request))

    # -- roles -------------------------------------------------------------------------------

    @r.get("/roles", response_model=list[RoleInfo], **_doc(None))
    async def list_roles(request: Request) -> JSONResponse:
        """List the roles and their permissions (``own`` = the scope of a grant)."""
        _actor(request)
        return JSONResponse(
            [
                {"role": role.value, "permissions": sorted(str(p) for p in perms)}
                for role, perms in ROLE_PERMISSIONS.items()
            ]
        )

    def role_change(op: str) -> None:
        @r.post(f"/roles/{op}", name=f"{op}_role", response_model=Change, **_doc(RoleChange))
        async def change_role(request: Request) -> JSONResponse:
            """Grant a role (the caller must hold all it allows), or revoke one."""
            actor, body = _actor(request), await _body(request, RoleChange)
            role = parse_role(body.role)
            change = admin.grant if op == "grant" else admin.revoke
            kind = PrincipalKind(body.kind)
            scope = body.scope or default_scope(role)
            return await _change(change, kind, body.principal, role, scope, actor)

    role_change("grant")
    role_change("revoke")

    return r
