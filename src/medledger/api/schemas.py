"""Pydantic models that describe the native API in OpenAPI; documentation only.

No request is parsed with these models: ``POST /api/v1/verify`` reads its bytes itself (strict
JSON, size limits, the error envelope of ``medledger.errors``), so the models only have to say
truthfully what that code accepts and answers. ``verify_request_schema()`` is the request body
of /api/v1/verify as one self-contained JSON schema; docs/certificate.md §5–6 is the source of
every pattern and bound here, and tests/api/test_native_schemathesis.py checks the server
against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from medledger.crypto.registry import SUITES

__all__ = [
    "Certificate",
    "ErrorBody",
    "ErrorDetails",
    "ErrorResponse",
    "Health",
    "Ready",
    "Signature",
    "SignedHeader",
    "VerdictInvalid",
    "VerdictValid",
    "VerifyRequest",
    "verify_request_schema",
]

# Integers in certificates are non-negative and below 2**53 (docs/certificate.md §1), and are
# written as integers: JSON Schema cannot tell 7 from 7.0, the verifier refuses 7.0 (400).
_MAX_INT = 2**53 - 1
Count = Annotated[
    int, Field(ge=0, le=_MAX_INT, description="an integer literal (no fraction or exponent)")
]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
KeyId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{16}$", description="the first 8 bytes of H(public key), hex")
]
# The implemented suites, whatever they are: the documentation cannot drift from the registry.
Suite = Annotated[str, WithJsonSchema({"type": "string", "enum": list(SUITES)})]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # An optional member is left out, never sent as null: do not advertise null defaults.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)


# --- the request: {"certificate": medledger-cert/1, "payload": ...} -----------------------------


class Signature(_Strict):
    key_id: KeyId
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="64 bytes, lowercase hex")]


class SignedHeader(_Strict):
    """The signed block header (docs/certificate.md §5); every member is required."""

    v: Literal[1]
    chain: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="the chain id")]
    height: Count
    prev: Hash
    tree_size: Count
    root: Hash
    ts: Annotated[
        str,
        Field(
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$",
            description="RFC 3339 UTC with a Z suffix",
        ),
    ]
    proposer: KeyId
    signatures: list[Signature]


class Certificate(_Strict):
    """A ``medledger-cert/1`` certificate (docs/certificate.md §6); no other members allowed."""

    format: Literal["medledger-cert/1"]
    suite: Suite
    entry: dict[str, Any] = Field(description="the certified ledger entry, any JSON object")
    leaf_index: Count
    inclusion_proof: list[Hash]
    header: SignedHeader
    payload_salt: (
        SkipJsonSchema[None]
        | Annotated[
            str,
            Field(
                pattern=r"^(?:[0-9a-f]{2})*$",
                description="the salt of the entry's payload_hash, lowercase hex; leave the member "
                "out rather than send null",
            ),
        ]
    ) = None


class VerifyRequest(_Strict):
    certificate: Certificate
    payload: dict[str, Any] | str | None = Field(
        default=None,
        description="the certified data: the resource as JSON (hashed in RFC 8785 canonical "
        "form) or a string (hashed as its UTF-8 bytes); needs the certificate's payload_salt. "
        "Absent or null: only the certificate is checked",
    )


def verify_request_schema() -> dict[str, Any]:
    """Return the JSON schema of the /api/v1/verify request body, with no ``$ref`` left."""
    schema = VerifyRequest.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")]), **inline(rest)}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out: dict[str, Any] = inline(schema)
    return out


# --- responses -----------------------------------------------------------------------------------


class VerdictValid(_Strict):
    """Every check passed."""

    valid: Literal[True]
    checks: list[str] = Field(description="what was checked and passed, in order")
    leaf_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    leaf_index: Count
    tree_size: Count


class VerdictInvalid(_Strict):
    """A well-formed certificate that failed ``check`` (the first check that failed)."""

    valid: Literal[False]
    check: str = Field(description="the failed check, e.g. header.signatures, inclusion, payload")
    message: str


class ErrorDetails(BaseModel):
    """What was wrong: the field, the (clipped) value sent and what was expected."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_no_null_defaults)

    field: SkipJsonSchema[None] | str = None
    value: SkipJsonSchema[None] | Any = None
    expected: SkipJsonSchema[None] | str = None


class ErrorBody(_Strict):
    code: str = Field(description="stable machine-readable code, e.g. document.malformed")
    message: str
    details: SkipJsonSchema[None] | ErrorDetails = None


class ErrorResponse(_Strict):
    """The error envelope of every non-FHIR route (``MedLedgerError.to_dict()``)."""

    error: ErrorBody


class Health(_Strict):
    status: Literal["ok"]


class Ready(_Strict):
    status: Literal["ready"]
    tree_size: Count = Field(description="entries in the ledger")
    height: Count = Field(description="height of the newest block")
