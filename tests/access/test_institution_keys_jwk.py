"""Institution key files (0600, adopt or refuse) and client public JWKs."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from medledger.access import institution_keys as ik
from medledger.access.jwk import parse_public_jwk
from medledger.crypto.keys import key_id, write_signing_key
from medledger.crypto.registry import get_suite
from medledger.errors import InputError, MalformedDocument, StateError

INTL = get_suite("intl-v1")
SM = get_suite("sm-v1")


@pytest.mark.parametrize("suite", [INTL, SM], ids=["intl-v1", "sm-v1"])
def test_key_file_is_private_and_signs(tmp_path: Path, suite: object) -> None:
    """The key file is 0600 in a 0700 folder; its public half and key id match what it signs."""
    key = ik.create_or_adopt(tmp_path, suite, "hosp-east")  # type: ignore[arg-type]
    assert key.created
    assert key.path == tmp_path / "institutions" / "hosp-east.key"
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key.path.parent).st_mode) == 0o700
    loaded_suite, private, kid = ik.load_key(tmp_path, "hosp-east")
    assert kid == key.key_id == key_id(loaded_suite, bytes.fromhex(key.public_key))
    sig = private.sign(b"submission")
    assert loaded_suite.load_verify_key(bytes.fromhex(key.public_key)).verify(sig, b"submission")
    assert key.public_key not in json.loads(key.path.read_text())["private_key"]


def test_existing_key_is_adopted_or_refused(tmp_path: Path) -> None:
    """A valid leftover key is adopted; another suite, institution or a loose mode is refused."""
    first = ik.create_or_adopt(tmp_path, INTL, "hosp-east")
    again = ik.create_or_adopt(tmp_path, INTL, "hosp-east")
    assert not again.created
    assert again.key_id == first.key_id
    with pytest.raises(StateError, match="sm-v1 key"):
        ik.create_or_adopt(tmp_path, SM, "hosp-east")
    write_signing_key(
        ik.key_path(tmp_path, "hosp-west"), INTL, INTL.generate_signing_key(), node="hosp-x"
    )
    with pytest.raises(StateError, match="hosp-x"):
        ik.create_or_adopt(tmp_path, INTL, "hosp-west")
    os.chmod(first.path, 0o644)
    with pytest.raises(StateError, match="chmod 600"):
        ik.create_or_adopt(tmp_path, INTL, "hosp-east")


@pytest.mark.parametrize("bad", ["../etc", "Hosp", "a", "x/y", ""])
def test_institution_ids_cannot_escape_the_folder(tmp_path: Path, bad: str) -> None:
    """An id that is not a-z0-9- never becomes a path."""
    with pytest.raises(InputError):
        ik.key_path(tmp_path, bad)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rsa_1024() -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505 - the weak key under test
    n = numbers.n.to_bytes(128, "big")
    return {"kty": "RSA", "n": _b64(n), "e": _b64(numbers.e.to_bytes(3, "big"))}


@pytest.mark.parametrize(
    "key",
    [
        OKPKey.generate_key("Ed25519"),
        ECKey.generate_key("P-256"),
        RSAKey.generate_key(2048),
    ],
    ids=["Ed25519", "P-256", "RSA"],
)
def test_public_jwks_are_accepted_with_rfc7638_thumbprints(key: object) -> None:
    """Standard public keys pass; the thumbprint equals joserfc's RFC 7638 one."""
    public = key.as_dict(private=False)  # type: ignore[attr-defined]
    public["kid"] = "lis-01-2026"
    jwk, tp = parse_public_jwk(json.dumps(public).encode())
    assert jwk["kid"] == "lis-01-2026"
    assert tp == JWKRegistry.import_key(public).thumbprint()


def test_sm2_jwk_is_checked_against_the_curve() -> None:
    """An EC key on curve SM2 is accepted when the point is on the curve, refused otherwise."""
    pub = SM.generate_signing_key().public_bytes
    good = {"kty": "EC", "crv": "SM2", "x": _b64(pub[1:33]), "y": _b64(pub[33:])}
    assert parse_public_jwk(json.dumps(good).encode())[0] == good
    bad = good | {"y": _b64(bytes(32))}
    with pytest.raises(MalformedDocument):
        parse_public_jwk(json.dumps(bad).encode())


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (OKPKey.generate_key("Ed25519").as_dict(private=True), "private key material"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "unsupported key type"),
        ({"kty": "OKP", "crv": "X25519", "x": _b64(bytes(32))}, "unsupported curve"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "abc"}, "not a valid OKP key"),
        ({"kty": "EC", "crv": "P-256", "x": _b64(bytes(32))}, "member y is missing"),
        (_rsa_1024(), "2048"),
    ],
)
def test_bad_jwks_are_refused(doc: dict[str, str], problem: str) -> None:
    """Private, symmetric, odd-curve, broken or weak keys are refused, naming field jwk."""
    with pytest.raises(InputError) as info:
        parse_public_jwk(json.dumps(doc).encode())
    assert problem in info.value.message
    assert info.value.field == "jwk"
