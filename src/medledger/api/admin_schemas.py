"""Request and response bodies of the admin API (``api.admin``).

The request models validate too: the routes read the body themselves (size-limited, strict
JSON), then check it against these (strict types, no unknown members), so the OpenAPI
document says exactly what is accepted. ``validated`` turns a pydantic error into an
``InputError`` naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medledger.errors import InputError

__all__ = [
    "Change",
    "ClientCreate",
    "ClientCreated",
    "InstitutionCreate",
    "InstitutionCreated",
    "PasswordReset",
    "RoleChange",
    "RoleInfo",
    "SecretIssued",
    "UserCreate",
    "validated",
]

Id = Annotated[str, Field(min_length=1, max_length=64, description="an account or institution id")]
Name = Annotated[str, Field(min_length=1, max_length=200, description="a display name (staff)")]
RoleText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="ROLE or ROLE@SCOPE: group_admin, institution_admin, clinician, technician, "
        "integration or auditor; SCOPE own (default), an institution id or * (group-wide)",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InstitutionCreate(_Body):
    id: Id = Field(description="e.g. hosp-east: a-z, 0-9 and '-'")
    name: Name
    kind: Literal["central", "member"] = "member"


class UserCreate(_Body):
    id: Id
    institution: Id
    name: Name
    password: str = Field(
        min_length=1, max_length=1024, description="12+ characters; stored only as Argon2id"
    )
    roles: list[RoleText] = Field(default_factory=list, max_length=20)


class PasswordReset(_Body):
    password: str = Field(
        min_length=1, max_length=1024, description="12+ characters; stored only as Argon2id"
    )


class ClientCreate(_Body):
    id: Id
    institution: Id
    name: Name | None = Field(default=None, description="default: the id")
    roles: list[RoleText] = Field(
        default_factory=lambda: ["integration"], max_length=20, description="default integration"
    )
    jwk: dict[str, Any] | None = Field(
        default=None, description="a public JWK, for private-key JWT client authentication"
    )
    secret: bool | None = Field(
        default=None,
        description="generate a client secret (default: only when no jwk is given); it is "
        "returned once, in this answer",
    )


class RoleChange(_Body):
    principal: Id
    kind: Literal["user", "client"] = "user"
    role: str = Field(min_length=1, max_length=32)
    scope: str | None = Field(
        default=None,
        max_length=64,
        description="own (the holder's institution), an institution id, or *",
    )


class Change(BaseModel):
    """A change made and anchored: its event (ids only) and the ledger entry anchoring it."""

    event: dict[str, Any]
    ledger_index: int


class InstitutionCreated(Change):
    institution: dict[str, Any]


class ClientCreated(Change):
    client: dict[str, Any]
    client_secret: str | None = Field(
        default=None, description="shown only now; only its Argon2id hash is kept"
    )


class SecretIssued(Change):
    client_secret: str = Field(description="shown only now; the old secret stops working")


class RoleInfo(BaseModel):
    role: str
    permissions: list[str] = Field(description="action:Resource@scope; own = the grant's scope")


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], body: dict[str, Any]) -> Model:
    """Return ``body`` as ``model``; ``InputError`` naming the first bad field otherwise."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        given = first.get("input")
        # Echo a scalar only: a "missing" error's input is the whole body, password included.
        if where == "password" or isinstance(given, (dict, list)):
            given = "(not shown)"
        raise InputError(
            f"bad {where}: {first.get('msg', 'invalid')}",
            field=where,
            value=given,
            expected=_expected(model, where),
        ) from None


def _expected(model: type[BaseModel], where: str) -> str | None:
    field = model.model_fields.get(where.split(".")[0])
    if field is None:
        return f"only the members {', '.join(model.model_fields)}"
    return field.description or str(field.annotation)
