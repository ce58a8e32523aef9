"""Every exception MedLedger raises, in one place.

Each error carries a stable machine-readable ``code``, the ``http_status`` an API answers with,
and the ``exit_code`` the CLI exits with (0 ok, 1 checked and found invalid or tampered,
2 usage or input error, 3 the environment failed: store unavailable, disk full).

This module imports nothing from the rest of the package, so any layer (including the offline
verifier, which ships alone) can raise these.

    MedLedgerError
    ├── InputError                 bad input; nothing was changed                (exit 2, 400)
    │   ├── InvalidEntry           an entry is not a valid JSON object
    │   ├── EntryTooLarge          an entry's canonical encoding exceeds the cap
    │   ├── UnknownSuite           a crypto suite name nobody implements
    │   ├── MalformedDocument      a certificate, proof, key or trust file cannot be parsed
    │   ├── ResourceInvalid        a FHIR resource fails validation; ``issues`` name paths (422)
    │   ├── UnknownResourceType    a FHIR resource type this server does not serve  (exit 2, 404)
    │   ├── MessageRejected        an HL7 v2 message cannot be accepted; names segment and field
    │   └── NotFound               an index, height or size that does not exist  (exit 2, 404)
    ├── StateError                 the operation does not fit the store's state  (exit 2, 409)
    │   ├── LedgerExists           init on a directory that already holds a ledger
    │   ├── LedgerMissing          a command on a directory with no ledger
    │   ├── PreconditionFailed     If-Match / If-None-Exist do not hold            (exit 2, 412)
    │   └── Gone                   the data was erased (its key destroyed)          (exit 2, 410)
    ├── VerificationFailed         checked and found invalid                     (exit 1, 422)
    │   ├── ProofInvalid           a Merkle proof does not hold
    │   │   └── RootMismatch       the proof leads to a different root
    │   ├── SignatureInvalid       a header is not signed by enough trusted keys
    │   ├── PayloadMismatch        the payload does not match the entry's payload hash
    │   └── AuditFailed            a store audit found tampered or missing items
    └── StorageError               the store failed underneath us                (exit 3, 503)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "AccountLocked",
    "AuditFailed",
    "AuthenticationFailed",
    "EntryTooLarge",
    "EnvironmentFailure",
    "Gone",
    "InputError",
    "InvalidEntry",
    "LedgerExists",
    "LedgerMissing",
    "MalformedDocument",
    "MedLedgerError",
    "MessageRejected",
    "NotFound",
    "PayloadMismatch",
    "PermissionDenied",
    "PreconditionFailed",
    "ProofInvalid",
    "ResourceInvalid",
    "RootMismatch",
    "SignatureInvalid",
    "StateError",
    "StorageError",
    "TokenInvalid",
    "UnknownResourceType",
    "UnknownSuite",
    "VerificationFailed",
    "WriteConflict",
]


_DETAIL_DEPTH = 4
_DETAIL_ITEMS = 20
_DETAIL_TEXT = 200
_MESSAGE_TEXT = 1000


class MedLedgerError(Exception):
    """Base of every MedLedger error."""

    code = "medledger.error"
    http_status = 500
    exit_code = 3

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error envelope used by the CLI and the native API (size-bounded)."""
        out: dict[str, Any] = {"code": self.code, "message": _text(self.message, _MESSAGE_TEXT)}
        if self.details:
            out["details"] = {
                _text(str(k), _DETAIL_TEXT): bounded(v, depth=1)
                for k, v in self.details.items()
                if v is not None
            }
        return out


class InputError(MedLedgerError):
    """Bad input: the error names the field, the value and what was wanted."""

    code = "input.invalid"
    http_status = 400
    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        expected: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, field=field, value=_clip(value), expected=expected, **details)
        self.field = field
        self.value = value
        self.expected = expected


class InvalidEntry(InputError):
    code = "entry.invalid"


class EntryTooLarge(InputError):
    code = "entry.too_large"
    http_status = 413


class UnknownSuite(InputError):
    code = "suite.unknown"


class MalformedDocument(InputError):
    code = "document.malformed"


class NotFound(InputError):
    code = "not_found"
    http_status = 404


class ResourceInvalid(InputError):
    """A FHIR resource failed validation. ``issues`` lists each problem with its element path.

    Each issue is ``{"severity": "error", "code": <FHIR issue type>, "diagnostics": str,
    "expression": [<FHIRPath of the element>]}``, ready for an OperationOutcome.
    """

    code = "fhir.invalid"
    http_status = 422

    def __init__(self, message: str, *, issues: list[dict[str, Any]], **details: Any) -> None:
        first = issues[0].get("expression", [None])[0] if issues else None
        super().__init__(message, field=first, expected="a valid FHIR R4 resource", **details)
        self.issues = issues


class UnknownResourceType(InputError):
    code = "fhir.unknown_type"
    http_status = 404


class MessageRejected(InputError):
    """An HL7 v2 message that cannot be accepted, answered with a negative ACK.

    ``ack_code`` is ``AR`` (rejected: the message cannot be read or is not one we take, e.g. no
    MSH, bad separators, unknown encoding, unsupported type or version) or ``AE`` (application
    error: readable, but its content is wrong, e.g. a required field is empty or a code is
    unknown). ``segment`` (e.g. ``OBR``), ``sequence`` (the segment's 1-based occurrence),
    ``position`` (the field number, e.g. 4 for OBR-4) and ``hl7_error`` (an HL7 table 0357 code,
    e.g. ``101`` required field missing, ``102`` data type error, ``103`` table value not found,
    ``200`` unsupported message type, ``203`` unsupported version id, ``207`` application
    internal error) fill the ACK's ERR segment. ``field`` reads e.g. ``OBR[2]-4``.
    """

    code = "hl7.rejected"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        ack_code: str = "AE",
        segment: str | None = None,
        sequence: int = 1,
        position: int | None = None,
        hl7_error: str = "207",
        value: Any = None,
        expected: str | None = None,
        **details: Any,
    ) -> None:
        if ack_code not in ("AE", "AR"):
            raise ValueError(f"ack_code must be AE or AR, not {ack_code!r}")
        where = None
        if segment is not None:
            where = segment if sequence == 1 else f"{segment}[{sequence}]"
            if position is not None:
                where = f"{where}-{position}"
        super().__init__(
            message, field=where, value=value, expected=expected, hl7_error=hl7_error, **details
        )
        self.ack_code = ack_code
        self.segment = segment
        self.sequence = sequence
        self.position = position
        self.hl7_error = hl7_error


class StateError(MedLedgerError):
    code = "state.conflict"
    http_status = 409
    exit_code = 2


class LedgerExists(StateError):
    code = "ledger.exists"


class LedgerMissing(StateError):
    code = "ledger.missing"


class PreconditionFailed(StateError):
    code = "state.precondition_failed"
    http_status = 412


class WriteConflict(StateError):
    """A concurrent writer got there first (a retry will see its result)."""

    code = "state.write_conflict"


class Gone(StateError):
    code = "state.gone"
    http_status = 410


class VerificationFailed(MedLedgerError):
    """A check ran and the thing checked is invalid. ``check`` names the failed check."""

    code = "verify.failed"
    http_status = 422
    exit_code = 1

    def __init__(self, message: str, *, check: str, **details: Any) -> None:
        super().__init__(message, check=check, **details)
        self.check = check


class ProofInvalid(VerificationFailed):
    code = "verify.proof_invalid"


class RootMismatch(ProofInvalid):
    """The proof is well formed but leads to ``calculated`` instead of ``expected``."""

    code = "verify.root_mismatch"

    def __init__(self, *, check: str, expected: bytes, calculated: bytes) -> None:
        super().__init__(
            f"{check}: calculated root {calculated.hex()} does not match expected root "
            f"{expected.hex()}",
            check=check,
            expected=expected.hex(),
            calculated=calculated.hex(),
        )
        self.expected = expected
        self.calculated = calculated


class SignatureInvalid(VerificationFailed):
    code = "verify.signature_invalid"


class PayloadMismatch(VerificationFailed):
    code = "verify.payload_mismatch"


class AuditFailed(VerificationFailed):
    """An audit found problems; ``findings`` lists each one with its location."""

    code = "audit.failed"

    def __init__(self, findings: list[dict[str, Any]]) -> None:
        super().__init__(
            f"audit found {len(findings)} problem(s)", check="audit", findings=findings
        )
        self.findings = findings


class StorageError(MedLedgerError):
    code = "storage.failed"
    http_status = 503
    exit_code = 3


def _clip(value: Any, limit: int = 120) -> Any:
    """Keep error details short: a huge bad value must not flood a terminal or a log."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[:limit]).hex() + ("…" if len(value) > limit else "")
    return bounded(value, text=limit)


def bounded(value: Any, *, depth: int = 0, text: int = _DETAIL_TEXT) -> Any:
    """Return a JSON-safe copy of ``value``, a few levels deep and items long at most.

    Error details echo what a client sent: a 60 KiB or 960-deep JSON value must neither flood
    a response or terminal nor exhaust the recursion limit while it is encoded.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if isinstance(value, str):
        return _text(value, text)
    if isinstance(value, dict):
        if depth >= _DETAIL_DEPTH:
            return f"(an object of {len(value)} members)"
        items = list(value.items())
        out = {
            _text(str(k), text): bounded(v, depth=depth + 1, text=text)
            for k, v in items[:_DETAIL_ITEMS]
        }
        if len(items) > _DETAIL_ITEMS:
            out["…"] = f"({len(items) - _DETAIL_ITEMS} more members)"
        return out
    if isinstance(value, (list, tuple)):
        if depth >= _DETAIL_DEPTH:
            return f"(an array of {len(value)} items)"
        listed = [bounded(v, depth=depth + 1, text=text) for v in value[:_DETAIL_ITEMS]]
        if len(value) > _DETAIL_ITEMS:
            listed.append(f"({len(value) - _DETAIL_ITEMS} more items)")
        return listed
    return _text(str(value), text)


def _text(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


class EnvironmentFailure(MedLedgerError):
    """Something outside our data failed: a server did not start, a peer did not answer."""

    code = "environment.failed"
    http_status = 503
    exit_code = 3


class PermissionDenied(MedLedgerError):
    """The caller is known but does not hold what the operation needs.

    The message names the missing permission (``action:resource@scope``), never data.
    """

    code = "access.denied"
    http_status = 403
    exit_code = 2


class AuthenticationFailed(MedLedgerError):
    """Credentials are missing or wrong, or the account is disabled or unknown.

    Deliberately vague: the message never says which of these it was, so it cannot be used to
    find out which accounts exist.
    """

    code = "auth.failed"
    http_status = 401
    exit_code = 2


class AccountLocked(AuthenticationFailed):
    """Too many consecutive failures: sign-in is refused until ``retry_after`` seconds pass."""

    code = "auth.locked"
    http_status = 429


class TokenInvalid(MedLedgerError):
    """An access token, refresh token or client assertion was refused.

    ``reason`` is one short stable word (``malformed``, ``alg-not-allowed``, ``wrong-key``,
    ``bad-signature``, ``expired``, ``not-yet-valid``, ``wrong-issuer``, ``wrong-audience``,
    ``revoked``, ``replayed``, ``unknown``, ``wrong-client``, ``lifetime-too-long``). Neither the
    message nor the details ever hold the token itself: it is a bearer credential.

    ``claimed`` is set when the token's signature verified but the token was still refused
    (expired, revoked, account disabled): the principal it names, which the audit trail records
    the refusal under. It never reaches the response.
    """

    code = "auth.token_invalid"
    http_status = 401
    exit_code = 1

    def __init__(self, message: str, *, reason: str, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)
        self.reason = reason
        self.claimed: Any = None
