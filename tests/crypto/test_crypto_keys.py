"""Signing-key files (mode 0600, no overwrite, strict contents) and trust-bundle validation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto import (
    TrustBundle,
    TrustedKey,
    get_suite,
    key_id,
    load_trust_bundle,
    read_signing_key,
    write_signing_key,
)
from medledger.errors import MalformedDocument, StateError, UnknownSuite

SUITES = ["intl-v1", "sm-v1"]


@pytest.mark.parametrize("name", SUITES)
def test_write_then_read_round_trip(tmp_path: Path, name: str) -> None:
    """A written key file reads back as the same suite, key, key id and node."""
    suite = get_suite(name)
    key = suite.generate_signing_key()
    path = tmp_path / "node.key"
    write_signing_key(path, suite, key, node="hospital-a")
    got_suite, got_key, kid, node = read_signing_key(path)
    assert got_suite is suite
    assert got_key.public_bytes == key.public_bytes
    assert got_key.private_bytes() == key.private_bytes()
    assert kid == key_id(suite, key.public_bytes)
    assert node == "hospital-a"
    doc = json.loads(path.read_text())
    assert doc == {
        "format": "medledger-signing-key/1",
        "suite": name,
        "alg": suite.sig_alg,
        "key_id": kid,
        "node": "hospital-a",
        "private_key": key.private_bytes().hex(),
    }
    assert sorted(os.listdir(tmp_path)) == ["node.key"]  # no temporary file left behind


def test_key_id_is_first_16_hex_of_suite_hash() -> None:
    """key_id is the first 16 hex characters of the suite hash of the public key."""
    for name in SUITES:
        suite = get_suite(name)
        pub = suite.generate_signing_key().public_bytes
        assert key_id(suite, pub) == suite.hash(pub).hex()[:16]


def test_written_file_has_mode_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    """The key file is created 0600 regardless of a umask of 0."""
    suite = get_suite("intl-v1")
    old = os.umask(0)
    try:
        write_signing_key(tmp_path / "k", suite, suite.generate_signing_key(), node="n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    """Writing over an existing file raises StateError and leaves the old file untouched."""
    suite = get_suite("intl-v1")
    path = tmp_path / "k"
    path.write_text("precious")
    with pytest.raises(StateError, match="refusing to overwrite"):
        write_signing_key(path, suite, suite.generate_signing_key(), node="n")
    assert path.read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_missing_directory_is_state_error(tmp_path: Path) -> None:
    """Writing into a directory that does not exist raises StateError."""
    suite = get_suite("intl-v1")
    with pytest.raises(StateError):
        write_signing_key(tmp_path / "nope" / "k", suite, suite.generate_signing_key(), node="n")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_to_read_group_or_world_accessible_key(tmp_path: Path, mode: int) -> None:
    """A key file that group or other may access is refused with a chmod hint."""
    suite = get_suite("intl-v1")
    path = tmp_path / "k"
    write_signing_key(path, suite, suite.generate_signing_key(), node="n")
    path.chmod(mode)
    with pytest.raises(StateError, match="chmod 600") as info:
        read_signing_key(path)
    assert info.value.details["mode"] == f"{mode:04o}"


def test_missing_key_file_is_state_error(tmp_path: Path) -> None:
    """Reading a key file that does not exist, or is a directory, raises StateError."""
    with pytest.raises(StateError):
        read_signing_key(tmp_path / "absent")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(StateError, match="not a regular file"):
        read_signing_key(tmp_path / "dir")


def _good_doc(name: str = "intl-v1") -> dict[str, Any]:
    suite = get_suite(name)
    key = suite.generate_signing_key()
    return {
        "format": "medledger-signing-key/1",
        "suite": name,
        "alg": suite.sig_alg,
        "key_id": key_id(suite, key.public_bytes),
        "node": "n",
        "private_key": key.private_bytes().hex(),
    }


def _write_raw(path: Path, content: str | bytes) -> Path:
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format="medledger-signing-key/2"), "format"),
        (lambda d: d.update(alg="sm2-sm3"), "alg"),
        (lambda d: d.update(key_id="0" * 16), "key_id"),
        (lambda d: d.update(private_key=d["private_key"].upper()), "private_key"),
        (lambda d: d.update(private_key=d["private_key"][:-2]), "private_key"),
        (lambda d: d.update(private_key=12), "private_key"),
        (lambda d: d.update(node=""), "node"),
        (lambda d: d.pop("node"), "node"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_bad_key_file_contents_are_malformed(tmp_path: Path, change: Any, field: str) -> None:
    """Each kind of bad content raises MalformedDocument naming the offending field."""
    doc = _good_doc()
    change(doc)
    path = _write_raw(tmp_path / "k", json.dumps(doc))
    with pytest.raises(MalformedDocument) as info:
        read_signing_key(path)
    assert info.value.field == field


def test_bad_private_key_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    """An unparseable private key is reported without its value (it would leak into logs)."""
    doc = _good_doc()
    secret = doc["private_key"].upper()
    doc["private_key"] = secret
    path = _write_raw(tmp_path / "k", json.dumps(doc))
    with pytest.raises(MalformedDocument) as info:
        read_signing_key(path)
    assert secret not in str(info.value.to_dict())
    assert secret.lower() not in str(info.value.to_dict())


@pytest.mark.parametrize("content", ["not json", "[]", '{"a": 1, "a": 2}', b"\xff\xfe"])
def test_unparseable_key_file_is_malformed(tmp_path: Path, content: str | bytes) -> None:
    """A key file that is not a strict JSON object raises MalformedDocument."""
    path = _write_raw(tmp_path / "k", content)
    with pytest.raises(MalformedDocument):
        read_signing_key(path)


def test_unknown_suite_in_key_file(tmp_path: Path) -> None:
    """A key file naming an unknown suite raises UnknownSuite."""
    doc = _good_doc()
    doc["suite"] = "rot13-v1"
    with pytest.raises(UnknownSuite):
        read_signing_key(_write_raw(tmp_path / "k", json.dumps(doc)))


def _bundle(name: str = "intl-v1", n: int = 3, quorum: int = 2) -> TrustBundle:
    suite = get_suite(name)
    keys = tuple(
        TrustedKey.of(suite, suite.generate_signing_key().public_bytes, node=f"hospital-{i}")
        for i in range(n)
    )
    return TrustBundle(chain="chain-1", suite=name, quorum=quorum, keys=keys)


@pytest.mark.parametrize("name", SUITES)
def test_trust_bundle_round_trip_and_lookup(tmp_path: Path, name: str) -> None:
    """A bundle survives to_json -> file -> load, and verify_key finds listed keys only."""
    suite = get_suite(name)
    signer = suite.generate_signing_key()
    kid = key_id(suite, signer.public_bytes)
    bundle = TrustBundle("c", name, 1, (TrustedKey.of(suite, signer.public_bytes, node="a"),))
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(bundle.to_json()))
    loaded = load_trust_bundle(path)
    assert loaded == bundle
    assert loaded.to_json()["format"] == "medledger-keys/1"
    vk = loaded.verify_key(kid)
    assert vk is not None
    assert vk.verify(signer.sign(b"head"), b"head")
    assert loaded.verify_key("0" * 16) is None


def _mutated(change: Any) -> dict[str, Any]:
    doc = _bundle().to_json()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format="medledger-keys/0"), "format"),
        (lambda d: d.update(quorum=0), "quorum"),
        (lambda d: d.update(quorum=4), "quorum"),
        (lambda d: d.update(quorum=True), "quorum"),
        (lambda d: d.update(quorum="2"), "quorum"),
        (lambda d: d.update(chain=""), "chain"),
        (lambda d: d.update(keys=[]), "keys"),
        (lambda d: d.update(keys="abc"), "keys"),
        (lambda d: d.update(extra=True), "extra"),
        (lambda d: d.pop("chain"), "chain"),
        (lambda d: d["keys"][1].update(key_id="0" * 16), "keys[1].key_id"),
        (lambda d: d["keys"][0].update(alg="sm2-sm3"), "keys[0].alg"),
        (lambda d: d["keys"][2].update(public_key="zz"), "keys[2].public_key"),
        (
            lambda d: d["keys"][2].update(public_key=d["keys"][2]["public_key"].upper()),
            "keys[2].public_key",
        ),
        (lambda d: d["keys"][0].update(public_key="00" * 32), "keys[0].public_key"),
        (lambda d: d["keys"][0].update(node=None), "keys[0].node"),
        (lambda d: d["keys"][0].pop("node"), "keys[0].node"),
        (lambda d: d["keys"][0].update(comment="x"), "keys[0].comment"),
        (lambda d: d["keys"].append(d["keys"][0]), "keys[3].key_id"),
        (lambda d: d["keys"].__setitem__(0, "k"), "keys[0]"),
    ],
)
def test_trust_bundle_validation(change: Any, field: str) -> None:
    """Every invalid bundle raises MalformedDocument naming the field, value and expectation."""
    with pytest.raises(MalformedDocument) as info:
        TrustBundle.from_json(_mutated(change))
    assert info.value.field == field
    assert info.value.expected


def test_trust_bundle_unknown_suite() -> None:
    """A bundle naming a suite nobody implements raises UnknownSuite."""
    with pytest.raises(UnknownSuite) as info:
        TrustBundle.from_json(_mutated(lambda d: d.update(suite="p256-v9")))
    assert info.value.field == "suite"


def test_trust_bundle_keys_of_the_other_suite_are_refused() -> None:
    """SM2 keys listed under intl-v1 fail: alg and key size belong to the declared suite."""
    doc = _bundle("sm-v1").to_json()
    doc["suite"] = "intl-v1"
    with pytest.raises(MalformedDocument):
        TrustBundle.from_json(doc)


def test_trust_bundle_not_an_object() -> None:
    """A non-object bundle raises MalformedDocument."""
    with pytest.raises(MalformedDocument):
        TrustBundle.from_json(["not", "a", "bundle"])


def test_load_trust_bundle_errors(tmp_path: Path) -> None:
    """A missing bundle file is a StateError; an unparseable one is MalformedDocument."""
    with pytest.raises(StateError):
        load_trust_bundle(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text('{"format": "medledger-keys/1",')
    with pytest.raises(MalformedDocument):
        load_trust_bundle(tmp_path / "bad.json")
