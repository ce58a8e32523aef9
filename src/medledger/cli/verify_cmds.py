"""Offline verification commands: verify and verify-consistency (no ledger needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from medledger.cli.output import (
    handle_errors,
    out_console,
    print_json,
    read_bytes,
    read_json_document,
)
from medledger.crypto.trust import load_trust_bundle
from medledger.errors import InputError, VerificationFailed
from medledger.verify.audit import (
    AUDIT_CERT_FORMAT,
    parse_audit_certificate,
    verify_audit_certificate,
)
from medledger.verify.certificate import (
    Report,
    parse_certificate,
    parse_consistency,
    verify_certificate,
    verify_consistency_document,
)

Trust = Annotated[
    Path, typer.Option("--trust", help="Trust bundle keys.json of the chain's validators.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("verify-consistency")(verify_consistency)


@handle_errors
def verify(
    cert: Annotated[str, typer.Argument(help="Certificate file (- for standard input).")],
    trust: Trust,
    payload: Annotated[
        Path | None, typer.Option(help="Check this payload against the salted payload hash.")
    ] = None,
    consistency: Annotated[
        Path | None,
        typer.Option(help="Consistency document from the certificate's head to a newer head."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Verify a certificate offline. Exit 0 valid, 1 invalid (names the check), 2 bad input.

    Takes a record certificate (medledger-cert/1) or an audit-event certificate
    (medledger-audit-cert/1, from `medledger audit cert`).
    """
    bundle = load_trust_bundle(trust)
    document = read_json_document(cert, "certificate")
    newer = None
    if consistency is not None:
        newer = parse_consistency(read_json_document(str(consistency), "consistency"))
    if isinstance(document, dict) and document.get("format") == AUDIT_CERT_FORMAT:
        if payload is not None:
            raise InputError(
                "an audit certificate certifies no payload",
                field="payload",
                value=str(payload),
                expected="no --payload with an audit certificate",
            )
        audit = parse_audit_certificate(document)
        _run(lambda: verify_audit_certificate(audit, bundle, newer=newer), json_out)
        return
    parsed = parse_certificate(document)
    body = None if payload is None else read_bytes(str(payload))
    _run(lambda: verify_certificate(parsed, bundle, payload=body, newer=newer), json_out)


@handle_errors
def verify_consistency(
    document: Annotated[str, typer.Argument(help="Consistency document (- for stdin).")],
    trust: Trust,
    json_out: JsonOut = False,
) -> None:
    """Verify that an older signed head is a prefix of a newer one (both signed, proof holds)."""
    bundle = load_trust_bundle(trust)
    doc = parse_consistency(read_json_document(document, "consistency"))
    _run(lambda: verify_consistency_document(doc, bundle), json_out)


def _run(check: Callable[[], Report], json_out: bool) -> None:
    try:
        report = check()
    except VerificationFailed as exc:
        if json_out:
            print_json({"valid": False, "check": exc.check, "message": exc.message})
        else:
            out_console.print(f"INVALID: {exc.check}: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    if json_out:
        print_json({"valid": True, "checks": report.passed, "leaf_hash": report.leaf_hash or None})
        return
    for line in report.passed:
        out_console.print(f"  ok  {line}", markup=False)
    out_console.print("VALID", markup=False)
