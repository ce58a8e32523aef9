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

from typing import Any

__all__ = [
    "AuditFailed",
    "EntryTooLarge",
    "Gone",
    "InputError",
    "InvalidEntry",
    "LedgerExists",
    "LedgerMissing",
    "MalformedDocument",
    "MedLedgerError",
    "NotFound",
    "PayloadMismatch",
    "PreconditionFailed",
    "ProofInvalid",
    "ResourceInvalid",
    "RootMismatch",
    "SignatureInvalid",
    "StateError",
    "StorageError",
    "UnknownResourceType",
    "UnknownSuite",
    "VerificationFailed",
]


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
        """Return the JSON error envelope used by the CLI and the native API."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: v for k, v in self.details.items() if v is not None}
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
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


class EnvironmentFailure(MedLedgerError):
    """Something outside our data failed: a server did not start, a peer did not answer."""

    code = "environment.failed"
    http_status = 503
    exit_code = 3
