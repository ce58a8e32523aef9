"""Shared CLI plumbing: error rendering, exit codes, reading input files."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from medledger.crypto.canonical import parse_json_object
from medledger.errors import InputError, MalformedDocument, MedLedgerError

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def fail(exc: MedLedgerError) -> NoReturn:
    """Print ``exc`` as one clear message (never a traceback) and exit with its code."""
    err_console.print(f"[bold red]error[/] [dim]({exc.code})[/]: {exc.message}", markup=True)
    details = exc.to_dict().get("details", {})
    for key in ("field", "value", "expected", "check"):
        if key in details:
            err_console.print(f"  {key}: {details[key]}", markup=False)
    raise typer.Exit(exc.exit_code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn MedLedger errors (and unreadable files) into a message and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MedLedgerError as exc:
            fail(exc)
        except OSError as exc:
            fail(
                InputError(
                    f"cannot read or write {exc.filename or 'a file'}: {exc.strerror or exc}",
                    field="path",
                    value=exc.filename,
                    expected="a readable file or writable directory",
                )
            )

    return wrapper


def read_bytes(path: str) -> bytes:
    """Read a file, or standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def read_json_document(path: str, what: str) -> Any:
    """Read and parse one JSON document; raise MalformedDocument naming the file."""
    # Strict: a duplicate key would let a forged value hide behind the one a verifier checks.
    return parse_json_object(read_bytes(path), field=f"{what} {path}", error=MalformedDocument)


def print_json(obj: Any, *, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
    sys.stdout.flush()
