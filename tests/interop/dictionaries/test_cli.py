"""``medledger interop dictionary|mapping`` in-process on a data directory made by ``init``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from medledger.cli import interop_dict_cmds
from medledger.cli.main import app as main_app
from medledger.interop.terminology import read_dictionary, read_mappings

from .conftest import DATA

Run = Callable[..., Result]
MEMBER, CENTRAL = "hosp-member-east", "hosp-central"


@pytest.fixture
def run() -> Run:
    """Invoke ``medledger interop …`` (this module's commands under an interop group)."""
    interop = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    interop_dict_cmds.register(interop)
    root = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    root.add_typer(interop, name="interop")
    runner = CliRunner()

    def invoke(*args: str | Path, input: bytes | None = None) -> Result:
        argv = [str(a) for a in args]
        return runner.invoke(root, ["interop", *argv], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory made with ``medledger init`` (node of the central hospital)."""
    d = tmp_path / "data"
    result = CliRunner().invoke(
        main_app, ["init", "-d", str(d), "--node", CENTRAL, "--block-max-wait-ms", "0"]
    )
    assert result.exit_code == 0, result.output
    return d


@pytest.fixture
def loaded(data: Path, run: Run) -> Path:
    """The data directory with both sample dictionaries and their mapping imported."""
    mapping = DATA / "member_east_to_central.csv"
    steps = [
        ("dictionary", "import", DATA / "member_east.csv", "--institution", MEMBER),
        ("dictionary", "import", DATA / "central.csv", "--institution", CENTRAL),
        ("mapping", "import", mapping, "--from", MEMBER, "--to", CENTRAL),
    ]
    for step in steps:
        result = run(*step, "-d", data)
        assert result.exit_code == 0, result.output
    return data


def test_import_reports_items_version_and_ledger_entry(data: Path, run: Run) -> None:
    """Importing the GB18030 member table says 49 items created, version 1, ledger entry."""
    first = run("dictionary", "import", DATA / "member_east.csv", "-i", MEMBER, "-d", data)
    again = run(
        "dictionary", "import", DATA / "member_east.csv", "-i", MEMBER, "-d", data, "--json"
    )
    assert first.exit_code == 0, first.output
    assert "49 items created" in first.output
    assert f"CodeSystem/dict-{MEMBER} version 1, ledger entry" in first.output
    summary = json.loads(again.stdout)
    assert (summary["version"], summary["changed"], summary["items"]) == (1, False, 49)


def test_translate_exit_codes(loaded: Path, run: Run) -> None:
    """A mapped code prints the central code (exit 0); 无对照 and unknown codes exit 1."""
    mapped = run("mapping", "translate", "JC0101", "--from", MEMBER, "--to", CENTRAL, "-d", loaded)
    marked = run("mapping", "translate", "JC0999", "--from", MEMBER, "--to", CENTRAL, "-d", loaded)
    unknown = run("mapping", "translate", "NO1", "--from", MEMBER, "--to", CENTRAL, "-d", loaded)
    as_json = run(
        "mapping", "translate", "JC0103", "--from", MEMBER, "--to", CENTRAL, "--json", "-d", loaded
    )
    assert mapped.exit_code == 0, mapped.output
    assert "JC0101 → 300101 胸部CT平扫 (equivalent)" in mapped.output
    assert marked.exit_code == 1
    assert "JC0999 → (none) (unmatched)" in marked.output
    assert "marked unmatched" in marked.output
    assert unknown.exit_code == 1
    assert "has no mapping" in unknown.output
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["parameter"][0] == {"name": "result", "valueBoolean": True}


def test_exports_round_trip(loaded: Path, run: Run, tmp_path: Path) -> None:
    """Exported XLSX and English CSV tables read back to exactly what was imported."""
    book, table = tmp_path / "member.xlsx", tmp_path / "map.csv"
    dictionary = run("dictionary", "export", "-i", MEMBER, "--out", book, "-d", loaded)
    mapping = run(
        "mapping", "export", "--from", MEMBER, "--to", CENTRAL, "--out", table, "--lang", "en",
        "-d", loaded,
    )  # fmt: skip
    assert dictionary.exit_code == 0, dictionary.output
    assert book.read_bytes().startswith(b"PK")  # the suffix chose XLSX
    assert read_dictionary(book.read_bytes()) == read_dictionary(
        (DATA / "member_east.csv").read_bytes()
    )
    assert mapping.exit_code == 0, mapping.output
    assert table.read_text(encoding="utf-8-sig").startswith("source_code,")
    original = read_mappings((DATA / "member_east_to_central.csv").read_bytes())
    assert read_mappings(table.read_bytes()) == original


def test_bad_input_exits_2_naming_the_field(data: Path, run: Run, tmp_path: Path) -> None:
    """A bad cell, a bad header and a missing file exit 2 and name what is wrong."""
    bad_row = tmp_path / "bad.csv"
    bad_row.write_text("项目代码,项目名称,类别\nA1,胸片,放射\nA2,血常规,化学\n", encoding="gb18030")
    no_header = tmp_path / "header.csv"
    no_header.write_text("编号?,说明\n1,2\n", encoding="utf-8")
    row = run("dictionary", "import", bad_row, "-i", MEMBER, "-d", data)
    header = run("dictionary", "import", no_header, "-i", MEMBER, "-d", data)
    missing = run("dictionary", "import", tmp_path / "none.csv", "-i", MEMBER, "-d", data)
    encoding = run(
        "dictionary", "import", bad_row, "-i", MEMBER, "--encoding", "x-nope", "-d", data
    )
    for result in (row, header, missing, encoding):
        assert result.exit_code == 2, result.output
    assert "row 3, column 类别" in row.output
    assert "化学" in row.output
    assert "field:" in header.output
    assert "none.csv" in missing.output
    assert "field: encoding" in encoding.output
    export = run("dictionary", "export", "-i", MEMBER, "--out", tmp_path / "x.csv", "-d", data)
    assert export.exit_code == 2  # nothing was stored by the failed imports
    assert "no dictionary of hosp-member-east has been imported" in export.output


def test_suggest_prints_chinese_table_and_json(data: Path, run: Run) -> None:
    """Without a mapping, suggest lists member items with central names and scores."""
    for name, inst in (("member_east.csv", MEMBER), ("central.csv", CENTRAL)):
        assert run("dictionary", "import", DATA / name, "-i", inst, "-d", data).exit_code == 0
    table = run("mapping", "suggest", "--from", MEMBER, "--to", CENTRAL, "--limit", "1", "-d", data)
    as_json = run("mapping", "suggest", "--from", MEMBER, "--to", CENTRAL, "--json", "-d", data)
    assert table.exit_code == 0, table.output
    assert "本院名称" in table.output
    assert "胸部CT增强" in table.output
    assert "49 unmapped item(s)" in table.output
    found = {s["code"]: s for s in json.loads(as_json.stdout)["suggestions"]}
    assert found["JC0102"]["candidates"][0]["code"] == "300102"
    assert found["JC0102"]["display"] == "胸部CT增强"
    assert all(0 <= c["score"] <= 100 for s in found.values() for c in s["candidates"])
