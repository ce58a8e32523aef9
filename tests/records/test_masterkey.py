"""Master-key files and the MEDLEDGER_MASTER_KEY variable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from medledger.crypto.registry import get_suite
from medledger.errors import MalformedDocument, StateError, UnknownSuite
from medledger.records.masterkey import (
    MASTER_KEY_ENV,
    MASTER_KEY_FORMAT,
    MasterKey,
    generate_master_key,
    load_master_key,
    master_key_doc,
)

SUITES = ["intl-v1", "sm-v1"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


def _write_doc(path: Path, doc: dict[str, object], mode: int = 0o600) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("suite_name", SUITES)
def test_generate_then_load_round_trips(tmp_path: Path, suite_name: str) -> None:
    """A generated key file loads back as the same key, with the suite's AEAD key size."""
    suite = get_suite(suite_name)
    master = generate_master_key(tmp_path / "master.json", suite)
    assert len(master.key) == suite.aead_key_size
    loaded = load_master_key(tmp_path / "master.json")
    assert loaded == master
    assert loaded.suite is suite


def test_file_is_mode_0600_with_the_documented_fields(tmp_path: Path) -> None:
    """The file has mode 0600 and exactly format, suite, kid and key."""
    suite = get_suite("intl-v1")
    master = generate_master_key(tmp_path / "m.json", suite)
    path = tmp_path / "m.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc == {
        "format": MASTER_KEY_FORMAT,
        "suite": "intl-v1",
        "kid": master.kid,
        "key": master.key.hex(),
    }
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


@pytest.mark.parametrize("suite_name", SUITES)
def test_kid_is_the_hash_of_tag_and_key(tmp_path: Path, suite_name: str) -> None:
    """kid = first 16 hex of suite.hash(b"medledger-master-key/1" + key)."""
    suite = get_suite(suite_name)
    master = generate_master_key(tmp_path / "m.json", suite)
    assert master.kid == suite.hash(b"medledger-master-key/1" + master.key).hex()[:16]


def test_repr_never_shows_the_key(tmp_path: Path) -> None:
    """repr and str of a MasterKey name suite and kid but not the key."""
    master = generate_master_key(tmp_path / "m.json", get_suite("sm-v1"))
    for text in (repr(master), str(master)):
        assert master.key.hex() not in text
        assert master.kid in text
        assert "sm-v1" in text


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    """Generating onto an existing path raises StateError and leaves the file alone."""
    path = tmp_path / "m.json"
    generate_master_key(path, get_suite("intl-v1"))
    before = path.read_bytes()
    with pytest.raises(StateError, match="overwrite"):
        generate_master_key(path, get_suite("intl-v1"))
    assert path.read_bytes() == before


def test_missing_directory_is_a_state_error(tmp_path: Path) -> None:
    """Writing into a directory that does not exist raises StateError."""
    with pytest.raises(StateError):
        generate_master_key(tmp_path / "nope" / "m.json", get_suite("intl-v1"))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_refuses_group_or_other_readable_file(tmp_path: Path, mode: int) -> None:
    """A key file that group or other may access is refused with a chmod hint."""
    path = tmp_path / "m.json"
    generate_master_key(path, get_suite("intl-v1"))
    path.chmod(mode)
    with pytest.raises(StateError, match="chmod 600") as info:
        load_master_key(path)
    assert info.value.details["mode"] == f"{mode:04o}"


def test_missing_file_is_a_state_error(tmp_path: Path) -> None:
    """Loading a path that does not exist raises StateError."""
    with pytest.raises(StateError):
        load_master_key(tmp_path / "absent.json")


def _good_doc(suite_name: str = "intl-v1") -> dict[str, object]:
    suite = get_suite(suite_name)
    return dict(master_key_doc(MasterKey.from_bytes(suite, os.urandom(suite.aead_key_size))))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "medledger-master-key/2"}, "format"),
        ({"kid": "0" * 16}, "kid"),
        ({"key": "ab" * 16}, "key"),  # 16 bytes is the SM4 size, not AES-256's
        ({"key": "AB" * 32}, "key"),  # upper case hex
        ({"key": 7}, "key"),
        ({"extra": 1}, "extra"),
    ],
)
def test_malformed_contents_name_the_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    """Bad contents raise MalformedDocument naming the field and what was expected."""
    doc = _good_doc() | change
    path = _write_doc(tmp_path / "m.json", doc)
    with pytest.raises(MalformedDocument) as info:
        load_master_key(path)
    assert info.value.field == field
    assert info.value.expected


def test_missing_field_is_malformed(tmp_path: Path) -> None:
    """A document without "kid" is refused naming that field."""
    doc = _good_doc()
    del doc["kid"]
    with pytest.raises(MalformedDocument) as info:
        load_master_key(_write_doc(tmp_path / "m.json", doc))
    assert info.value.field == "kid"


def test_not_json_is_malformed(tmp_path: Path) -> None:
    """A file that is not a JSON object is MalformedDocument."""
    path = tmp_path / "m.json"
    path.write_text("key=abc")
    path.chmod(0o600)
    with pytest.raises(MalformedDocument):
        load_master_key(path)


def test_unknown_suite_is_refused(tmp_path: Path) -> None:
    """A suite nobody implements raises UnknownSuite (an input error, like key files)."""
    with pytest.raises(UnknownSuite):
        load_master_key(_write_doc(tmp_path / "m.json", _good_doc() | {"suite": "rot13"}))


def test_bad_key_is_never_echoed(tmp_path: Path) -> None:
    """The error for an ill-formed key does not repeat the key material."""
    secret = "Ab" * 32
    with pytest.raises(MalformedDocument) as info:
        load_master_key(_write_doc(tmp_path / "m.json", _good_doc() | {"key": secret}))
    assert secret not in str(info.value.to_dict())


def test_misspelt_key_field_is_never_echoed(tmp_path: Path) -> None:
    """An unexpected field (say "Key") is refused without echoing its value."""
    doc = _good_doc()
    doc["Key"] = doc.pop("key")
    with pytest.raises(MalformedDocument) as info:
        load_master_key(_write_doc(tmp_path / "m.json", doc))
    assert str(doc["Key"]) not in str(info.value.to_dict())


@pytest.mark.parametrize("suite_name", SUITES)
def test_loads_from_environment_when_no_path(
    monkeypatch: pytest.MonkeyPatch, suite_name: str
) -> None:
    """With path None the key comes from MEDLEDGER_MASTER_KEY holding the same JSON."""
    doc = _good_doc(suite_name)
    monkeypatch.setenv(MASTER_KEY_ENV, json.dumps(doc))
    master = load_master_key(None)
    assert master.key.hex() == doc["key"]
    assert master.kid == doc["kid"]
    assert master.suite.name == suite_name


def test_path_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A given path is used even when the variable is set."""
    monkeypatch.setenv(MASTER_KEY_ENV, json.dumps(_good_doc()))
    from_file = generate_master_key(tmp_path / "m.json", get_suite("intl-v1"))
    assert load_master_key(tmp_path / "m.json") == from_file


def test_no_path_and_no_environment_is_a_state_error() -> None:
    """Without a path or the variable, loading raises StateError naming the variable."""
    with pytest.raises(StateError, match=MASTER_KEY_ENV):
        load_master_key(None)


def test_malformed_environment_is_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable holding bad JSON raises MalformedDocument, not a crash."""
    monkeypatch.setenv(MASTER_KEY_ENV, "{not json")
    with pytest.raises(MalformedDocument):
        load_master_key(None)
