"""``medledger interop dictionary|mapping``: item dictionaries and mappings on a data directory.

Like ``medledger records …`` these commands open the node's data directory directly (not
while ``medledger serve`` runs) and act as the node itself; a dictionary is stored as its
institution's record and a mapping as its source institution's.

Exit codes: 0 ok, 1 ``mapping translate`` found no usable mapping, 2 bad input (file, header,
encoding, unknown institution or code; the error names the row and column or the field).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Column, Table

from medledger.cli.output import handle_errors, out_console, print_json, read_bytes

if TYPE_CHECKING:
    from medledger.interop.dictionaries import DictionaryService, Stored

__all__ = ["register"]

DEFAULT_DATA = Path("medledger-data")
Data = Annotated[Path, typer.Option("--data", "-d", help="Ledger data directory.")]
Institution = Annotated[
    str, typer.Option("--institution", "-i", help="Institution id, e.g. hosp-central.")
]
Source = Annotated[str, typer.Option("--from", help="Source institution (whose codes).")]
Target = Annotated[str, typer.Option("--to", help="Target institution.")]
InFile = Annotated[str, typer.Argument(help="CSV or XLSX file ('-': standard input).")]
OutFile = Annotated[Path, typer.Option("--out", "-o", help="File to write ('-': stdout).")]
Fmt = Annotated[
    Literal["csv", "xlsx"] | None,
    typer.Option("--format", help="csv or xlsx (default: from --out's suffix, else csv)."),
]
Lang = Annotated[Literal["zh", "en"], typer.Option("--lang", help="Header language: zh or en.")]
Encoding = Annotated[
    str | None,
    typer.Option(help="Force a CSV encoding (default: detect UTF-8, UTF-16 or GB18030)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]

dictionary_app = typer.Typer(
    help="Item dictionaries (基础字典): one CodeSystem per institution.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
mapping_app = typer.Typer(
    help="Mappings (字典对照) from one institution's dictionary to another's: ConceptMaps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(interop_app: typer.Typer) -> None:
    """Add the ``dictionary`` and ``mapping`` groups to the ``interop`` group."""
    interop_app.add_typer(dictionary_app, name="dictionary")
    interop_app.add_typer(mapping_app, name="mapping")


@contextmanager
def _dictionaries(data: Path) -> Iterator[DictionaryService]:
    """Open the node of ``data`` and its dictionaries, as the node itself."""
    from medledger.interop.dictionaries import DictionaryService
    from medledger.ledger.node import LedgerNode
    from medledger.records.service import RecordService

    with LedgerNode.open(data) as node:
        yield DictionaryService(RecordService.open(node), listen=False)


def _stored(stored: Stored, what: str, as_json: bool) -> None:
    """Report an import."""
    if as_json:
        print_json(stored.summary())
        return
    state = "created" if stored.created else ("updated" if stored.changed else "unchanged")
    entry = "" if stored.ledger_index is None else f", ledger entry {stored.ledger_index}"
    out_console.print(
        f"{what}: {stored.items} {'items' if stored.resource_type == 'CodeSystem' else 'pairs'}"
        f" {state}, {stored.resource_type}/{stored.id} version {stored.version}{entry}",
        markup=False,
    )


def _write(out: Path, data: bytes, fmt: str, what: str) -> None:
    """Write an export to ``out`` (or stdout for ``-``) and say so on stderr."""
    if str(out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    out.write_bytes(data)
    out_console.print(f"{what} written to {out} ({fmt}, {len(data):,} bytes)", markup=False)


def _format_of(out: Path, fmt: Literal["csv", "xlsx"] | None) -> Literal["csv", "xlsx"]:
    """The export format: as given, else from the file's suffix."""
    if fmt is not None:
        return fmt
    return "xlsx" if out.suffix.lower() == ".xlsx" else "csv"


def _export(
    data: Path,
    out: Path,
    fmt: Literal["csv", "xlsx"] | None,
    lang: Literal["zh", "en"],
    what: str,
    fetch: Callable[[DictionaryService], list[Any]],
    write: Callable[..., bytes],
) -> None:
    """Write what ``fetch`` reads from the stored dictionaries to ``out`` as a table:
    ``write(rows, format=…, language=…)`` is ``write_dictionary`` or ``write_mappings``."""
    chosen = _format_of(out, fmt)
    with _dictionaries(data) as dicts:
        rows = fetch(dicts)
    _write(out, write(rows, format=chosen, language=lang), chosen, what)


@dictionary_app.command("import")
@handle_errors
def dictionary_import(
    file: InFile,
    institution: Institution,
    encoding: Encoding = None,
    as_json: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """Import an institution's dictionary table (all or nothing) as a new version."""
    from medledger.interop.dictionaries import dictionary_id
    from medledger.interop.terminology import read_dictionary

    dictionary_id(institution)  # check the id before reading the file
    items = read_dictionary(read_bytes(file), encoding=encoding)
    with _dictionaries(data) as dicts:
        stored = dicts.save_dictionary(institution, items)
    _stored(stored, institution, as_json)


@dictionary_app.command("export")
@handle_errors
def dictionary_export(
    institution: Institution,
    out: OutFile,
    fmt: Fmt = None,
    lang: Lang = "zh",
    data: Data = DEFAULT_DATA,
) -> None:
    """Export an institution's stored dictionary as CSV (UTF-8 with BOM) or XLSX."""
    from medledger.interop.terminology import write_dictionary

    fetch = methodcaller("dictionary_items", institution)  # DictionaryService → items
    _export(data, out, fmt, lang, institution, fetch, write_dictionary)


@mapping_app.command("import")
@handle_errors
def mapping_import(
    file: InFile,
    source: Source,
    target: Target,
    encoding: Encoding = None,
    as_json: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """Import a mapping table source → target (all or nothing); codes are checked against
    the stored dictionaries."""
    from medledger.interop.dictionaries import mapping_id
    from medledger.interop.terminology import read_mappings

    mapping_id(source, target)
    pairs = read_mappings(read_bytes(file), encoding=encoding)
    with _dictionaries(data) as dicts:
        stored = dicts.save_mapping(source, target, pairs)
    _stored(stored, f"{source} → {target}", as_json)


@mapping_app.command("export")
@handle_errors
def mapping_export(
    source: Source,
    target: Target,
    out: OutFile,
    fmt: Fmt = None,
    lang: Lang = "zh",
    data: Data = DEFAULT_DATA,
) -> None:
    """Export the stored mapping source → target as CSV (UTF-8 with BOM) or XLSX."""
    from medledger.interop.terminology import write_mappings

    fetch = methodcaller("mapping_pairs", source, target)  # DictionaryService → pairs
    _export(data, out, fmt, lang, f"{source} → {target}", fetch, write_mappings)


@mapping_app.command("suggest")
@handle_errors
def mapping_suggest(
    source: Source,
    target: Target,
    limit: Annotated[int, typer.Option(min=1, max=50, help="Candidates per item.")] = 3,
    cutoff: Annotated[float, typer.Option(min=0, max=100, help="Lowest score shown.")] = 60.0,
    as_json: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """Suggest target items for each source item the mapping does not cover yet (to confirm
    by hand: nothing is mapped automatically)."""
    from medledger.api.terminology import suggestions_json

    with _dictionaries(data) as dicts:
        found = dicts.suggestions(source, target, limit=limit, cutoff=cutoff)
    if as_json:
        print_json({"source": source, "target": target, "suggestions": suggestions_json(found)})
        return
    headers = ("本院代码", "本院名称", "建议代码", "建议名称", "分数", "依据")
    table = Table(*(Column(h, overflow="fold") for h in headers))
    for s in found:
        if not s.candidates:
            table.add_row(s.source.code, s.source.display, "", "(无建议)", "", "")
        for rank, c in enumerate(s.candidates):
            first = rank == 0
            table.add_row(
                s.source.code if first else "",
                s.source.display if first else "",
                c.target.code,
                c.target.display,
                f"{c.score:.1f}",
                c.reason,
            )
    out_console.print(table)
    out_console.print(f"{len(found)} unmapped item(s) of {source}", markup=False)


@mapping_app.command("translate")
@handle_errors
def mapping_translate(
    code: Annotated[str, typer.Argument(help="A code of the source institution's dictionary.")],
    source: Source,
    target: Target,
    as_json: Json = False,
    data: Data = DEFAULT_DATA,
) -> None:
    """Translate one code source → target with the stored mappings (exit 1 if unmapped)."""
    from medledger.interop.dictionaries import mapping_id
    from medledger.interop.model import code_system

    mapping_id(source, target)
    with _dictionaries(data) as dicts:
        translator = dicts.translator()
    params = translator.parameters(code_system(source), code, code_system(target))
    result = bool(params["parameter"][0]["valueBoolean"])
    if as_json:
        print_json(params)
    else:
        _print_translation(params, code)
    if not result:
        raise typer.Exit(1)


def _print_translation(params: dict[str, Any], code: str) -> None:
    """Print each match (``code → target display (equivalence)``), then why none is usable."""
    for p in params["parameter"]:
        if p["name"] != "match":
            continue
        parts = {part["name"]: part for part in p["part"]}
        equivalence = parts["equivalence"]["valueCode"]
        coding = parts["concept"]["valueCoding"] if "concept" in parts else None
        shown = "(none)" if coding is None else f"{coding['code']} {coding.get('display', '')}"
        out_console.print(f"{code} → {shown} ({equivalence})", markup=False)
    for p in params["parameter"]:
        if p["name"] == "message":
            out_console.print(p["valueString"], markup=False)
