"""Blind indexes, HMAC-SM3, pseudonyms and the group secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tongsuopy.crypto import hashes

from medledger.crypto.registry import get_suite
from medledger.errors import InputError, MalformedDocument, StateError
from medledger.records.blind import (
    GROUP_SECRET_ENV,
    GROUP_SECRET_FORMAT,
    BlindIndex,
    GroupSecret,
    blind_index_key,
    generate_group_secret,
    hmac_digest,
    load_group_secret,
    normalize_name,
    pseudonym,
)

INTL = get_suite("intl-v1")
SM = get_suite("sm-v1")
SECRET = GroupSecret(bytes(range(32)))

# GM/T 0042-2015 Appendix D.3 (also in OpenSSL's evpmac_sm3.txt): (key, message, HMAC-SM3).
GMT_0042_D3 = [
    (
        bytes(range(1, 33)),
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" * 2,
        "ca05e144ed05d1857840d1f318a4a8669e559fc8391f414485bfdf7bb408963a",
    ),
    (
        bytes(range(1, 38)),
        b"\xcd" * 50,
        "220bf579ded555393f0159f66c99877822a3ecf610d1552154b41d44b94db3ae",
    ),
    (
        b"\x0b" * 32,
        b"Hi There",
        "c0ba18c68b90c88bc07de794bfc7d2c8d19ec31ed8773bc2b390c9604e0be11e",
    ),
    (
        b"Jefe Jeferson Jr",
        b"what do ya want for nothing?",
        "ce791a34c59adef472997a249600f3f244d59e875be04055ba2ae12fc845e78c",
    ),
]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GROUP_SECRET_ENV, raising=False)


def index(suite_name: str = "intl-v1", secret: GroupSecret = SECRET) -> BlindIndex:
    return BlindIndex.from_group_secret(secret, get_suite(suite_name))


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    out: bytes = h.finalize()
    return out


def _reference_hmac_sm3(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 written out plainly over Tongsuo's SM3."""
    if len(key) > 64:
        key = _sm3(key)
    key = key + b"\0" * (64 - len(key))
    ipad = bytes(k ^ 0x36 for k in key)
    opad = bytes(k ^ 0x5C for k in key)
    return _sm3(opad + _sm3(ipad + msg))


@pytest.mark.parametrize(("key", "msg", "mac"), GMT_0042_D3)
def test_hmac_sm3_known_answers(key: bytes, msg: bytes, mac: str) -> None:
    """HMAC-SM3 matches the GM/T 0042-2015 Appendix D.3 vectors."""
    assert hmac_digest(SM, key, msg).hex() == mac


def test_hmac_sha256_known_answer() -> None:
    """intl-v1 HMAC matches RFC 4231 test case 2."""
    mac = hmac_digest(INTL, b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_sm3_equals_plain_rfc2104(key: bytes, msg: bytes) -> None:
    """For any key length (over the 64-byte block too) HMAC-SM3 equals a plain RFC 2104."""
    assert hmac_digest(SM, key, msg) == _reference_hmac_sm3(key, msg)
    if "sm3" in hashlib.algorithms_available:  # OpenSSL's own HMAC, a third implementation
        assert hmac_digest(SM, key, msg) == hmac.new(key, msg, "sm3").digest()


@pytest.mark.parametrize("suite_name", ["intl-v1", "sm-v1"])
def test_tokens_are_stable_and_hex(suite_name: str) -> None:
    """The same identifier gives the same 64-hex token from independent instances."""
    a = index(suite_name).token("urn:oid:2.16.156.10011.1.5", "310101199001011234")
    b = index(suite_name).token("urn:oid:2.16.156.10011.1.5", "310101199001011234")
    assert a == b
    assert len(a) == 64
    assert int(a, 16) >= 0


def test_tokens_differ_by_value_system_key_and_suite() -> None:
    """Changing the value, the system, the key or the suite changes the token."""
    sys_, val = "http://hospital-a/mrn", "MRN0001"
    base = index().token(sys_, val)
    others = {
        index().token(sys_, "MRN0002"),
        index().token("http://hospital-b/mrn", val),
        index(secret=GroupSecret(b"\x01" * 32)).token(sys_, val),
        index("sm-v1").token(sys_, val),
        index().token(None, val),
    }
    assert base not in others
    assert len(others) == 5


def test_identifier_tokens_are_case_sensitive_but_nfkc_and_stripped() -> None:
    """Identifiers keep case, but full-width forms and surrounding spaces do not matter."""
    idx = index()
    assert idx.token(None, "abc123") != idx.token(None, "ABC123")
    assert idx.token(None, "ＡＢＣ１２３") == idx.token(None, "ABC123")
    assert idx.token(" sys ", " 123 ") == idx.token("sys", "123")
    assert idx.token(None, "x") == idx.token("", "x")


def test_separator_in_system_cannot_collide() -> None:
    """("a|b", "c") and ("a", "b|c") give different tokens: "|" in a system is escaped."""
    idx = index()
    assert idx.token("a|b", "c") != idx.token("a", "b|c")
    assert idx.token("a\\", "|c") != idx.token("a\\|", "c")


def test_name_and_identifier_tokens_never_coincide() -> None:
    """A name token differs from the identifier token of the same text."""
    idx = index()
    assert idx.name("zhang") != idx.token(None, "zhang")


def test_blank_values_are_refused() -> None:
    """Blank identifiers and names are refused, not indexed."""
    with pytest.raises(InputError):
        index().token("sys", "   ")
    with pytest.raises(InputError):
        index().name("\u3000")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("张 三", "张三"),
        ("张\u3000三", "张三"),  # ideographic space
        (" 张  三 ", "张三"),
        ("欧阳 娜 娜", "欧阳娜娜"),
        ("Zhang San", "zhang  san"),
        ("ＺＨＡＮＧ　ＳＡＮ", "zhang san"),
        ("STRASSE", "straße"),  # casefold, not lower
        ("买买提 • 艾力", "买买提·艾力"),
        ("买买提・艾力", "买买提·艾力"),
        ("𠀀 𠀁", "𠀀𠀁"),  # CJK extension B
    ],
)
def test_names_that_should_match(a: str, b: str) -> None:
    """Spacing, width, case and middle-dot variants of one name give one token."""
    idx = index("sm-v1")
    assert idx.name(a) == idx.name(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("张三", "张四"), ("zhang san", "zhangsan"), ("张 san", "张san"), ("李 四", "李四五")],
)
def test_names_that_should_not_match(a: str, b: str) -> None:
    """Different names, and the space between CJK and Latin letters, stay distinct."""
    assert index().name(a) != index().name(b)


def test_normalize_name_output() -> None:
    """normalize_name shows the form that is MACed."""
    assert normalize_name(" 张  三 ") == "张三"
    assert normalize_name("Wang  XIAO Ming") == "wang xiao ming"
    assert normalize_name("张 San") == "张 san"


def test_pseudonym_is_stable_64_hex() -> None:
    """The same patient at the same institution always gets the same 64-hex pseudonym."""
    p = pseudonym(SECRET, "hospital-a", "P000123", SM)
    assert p == pseudonym(SECRET.secret, "hospital-a", "P000123", SM)
    assert len(p) == 64
    assert p == p.lower()
    assert int(p, 16) >= 0


def test_pseudonym_matches_its_definition() -> None:
    """pseudonym = hex HMAC(group secret, institution ‖ 0x00 ‖ patient id)."""
    expected = hmac.new(SECRET.secret, b"hospital-a\0P000123", "sha256").hexdigest()
    assert pseudonym(SECRET, "hospital-a", "P000123", INTL) == expected


def test_pseudonyms_differ() -> None:
    """Institution, patient id, secret and suite each change the pseudonym."""
    base = pseudonym(SECRET, "hospital-a", "P1", INTL)
    others = {
        pseudonym(SECRET, "hospital-b", "P1", INTL),
        pseudonym(SECRET, "hospital-a", "P2", INTL),
        pseudonym(GroupSecret(b"\x07" * 32), "hospital-a", "P1", INTL),
        pseudonym(SECRET, "hospital-a", "P1", SM),
        pseudonym(SECRET, "hospital-aP", "1", INTL),
    }
    assert base not in others
    assert len(others) == 5


def test_pseudonym_refuses_bad_ids() -> None:
    """NUL in the institution, blank ids and short secrets are refused."""
    with pytest.raises(InputError):
        pseudonym(SECRET, "a\0b", "1", INTL)
    with pytest.raises(InputError):
        pseudonym(SECRET, "hospital-a", " ", INTL)
    with pytest.raises(InputError):
        pseudonym(b"short", "hospital-a", "1", INTL)


def test_pseudonym_ignores_width_of_digits() -> None:
    """A full-width patient id gives the same pseudonym as the ASCII one."""
    assert pseudonym(SECRET, "h", "１２３", INTL) == pseudonym(SECRET, "h", "123", INTL)


def test_blind_index_key_is_derived_from_group_secret() -> None:
    """The key is a deterministic 32-byte HKDF output, unlike the secret, per secret."""
    key = blind_index_key(SECRET)
    assert key == blind_index_key(SECRET.secret)
    assert len(key) == 32
    assert key != SECRET.secret
    assert key != blind_index_key(GroupSecret(b"\x01" * 32))
    tok = BlindIndex(key, INTL).token(None, "x")
    assert tok == index().token(None, "x")
    assert tok != pseudonym(SECRET, "x", "x", INTL)


def test_short_blind_index_key_is_refused() -> None:
    """A blind-index key under 16 bytes is refused."""
    with pytest.raises(InputError):
        BlindIndex(b"k" * 15, INTL)


def test_group_secret_file_round_trip(tmp_path: Path) -> None:
    """A generated group secret is 32 bytes, mode 0600, and loads back equal."""
    path = tmp_path / "group.json"
    secret = generate_group_secret(path)
    assert len(secret.secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "format": GROUP_SECRET_FORMAT,
        "secret": secret.secret.hex(),
    }
    assert load_group_secret(path) == secret
    assert secret.secret.hex() not in repr(secret)


def test_group_secret_refuses_overwrite_and_loose_modes(tmp_path: Path) -> None:
    """No overwrite; a group/other-readable file is refused."""
    path = tmp_path / "group.json"
    generate_group_secret(path)
    with pytest.raises(StateError):
        generate_group_secret(path)
    path.chmod(0o644)
    with pytest.raises(StateError, match="chmod 600"):
        load_group_secret(path)


@pytest.mark.parametrize(
    "doc",
    [
        {"format": "medledger-group-secret/2", "secret": "00" * 32},
        {"format": GROUP_SECRET_FORMAT, "secret": "00" * 16},
        {"format": GROUP_SECRET_FORMAT},
        {"format": GROUP_SECRET_FORMAT, "secret": "00" * 32, "x": 1},
    ],
)
def test_malformed_group_secret(tmp_path: Path, doc: dict[str, object]) -> None:
    """Wrong format, wrong length, missing or extra fields raise MalformedDocument."""
    path = tmp_path / "group.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    with pytest.raises(MalformedDocument):
        load_group_secret(path)


def test_group_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """With path None the secret comes from MEDLEDGER_GROUP_SECRET."""
    doc = {"format": GROUP_SECRET_FORMAT, "secret": "ab" * 32}
    monkeypatch.setenv(GROUP_SECRET_ENV, json.dumps(doc))
    assert load_group_secret(None) == GroupSecret(b"\xab" * 32)


def test_group_secret_missing_everywhere() -> None:
    """No path and no variable raises StateError naming the variable."""
    with pytest.raises(StateError, match=GROUP_SECRET_ENV):
        load_group_secret(None)
