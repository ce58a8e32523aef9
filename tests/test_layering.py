"""Dependencies point downwards; the offline verifier can ship alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "medledger"


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def test_verify_imports_only_crypto_and_errors() -> None:
    """verify/ imports nothing of ours but crypto/ and errors, and no ORM or server code."""
    ours = {m for m in _imports("verify") if m.startswith("medledger")}
    allowed = ("medledger.crypto", "medledger.errors", "medledger.verify")
    assert all(m.startswith(allowed) for m in ours), sorted(ours)
    third = {m.split(".")[0] for m in _imports("verify")} - {"medledger"}
    assert not third & {"sqlalchemy", "fastapi", "starlette", "alembic", "typer", "psycopg"}


def test_verify_runs_without_storage_modules() -> None:
    """Importing and using the verifier never loads the store, ledger, ORM or CLI."""
    code = (
        "import sys, medledger.verify.certificate, medledger.verify.merkle\n"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('sqlalchemy','alembic','typer')"
        " or m.startswith(('medledger.ledger','medledger.store','medledger.cli'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_crypto_depends_on_nothing_above() -> None:
    """crypto/ imports no other medledger package except errors."""
    ours = {m for m in _imports("crypto") if m.startswith("medledger")}
    assert all(m.startswith(("medledger.crypto", "medledger.errors")) for m in ours), ours


def test_errors_module_imports_nothing_of_ours() -> None:
    """errors.py is the bottom of the stack."""
    tree = ast.parse((SRC / "errors.py").read_text(encoding="utf-8"))
    mods = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in mods if m and m.startswith("medledger")]


def test_domain_packages_never_import_api_or_cli() -> None:
    """records/ (and every lower layer) imports neither the HTTP API nor the CLI."""
    for package in ("records", "ledger", "ordering", "store", "crypto", "verify"):
        ours = {m for m in _imports(package) if m.startswith("medledger")}
        bad = {m for m in ours if m.startswith(("medledger.api", "medledger.cli"))}
        assert not bad, (package, sorted(bad))


def test_ledger_does_not_import_records() -> None:
    """Dependencies point down: records build on the ledger, never the reverse."""
    for package in ("ledger", "ordering", "store", "crypto", "verify"):
        ours = {m for m in _imports(package) if m.startswith("medledger")}
        assert not {m for m in ours if m.startswith("medledger.records")}, package


def test_records_never_import_access() -> None:
    """Access control builds on records (a guard the records layer calls), not the reverse."""
    ours = {m for m in _imports("records") if m.startswith("medledger")}
    assert not {m for m in ours if m.startswith("medledger.access")}, sorted(ours)
