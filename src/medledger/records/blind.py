"""Blind indexes for exact-match search, patient pseudonyms, and the group secret behind both.

Search columns never hold plaintext identifiers or names: they hold ``HMAC(k, normalized value)``
with the suite's hash (HMAC-SHA-256 for ``intl-v1``, HMAC-SM3 for ``sm-v1``, RFC 2104 with
64-byte blocks). The exact bytes MACed:

- identifier: ``b"id\\x00" ‖ system ‖ "|" ‖ value``, each NFKC-normalized and stripped, case
  kept; ``\\`` and ``|`` in the system are escaped with ``\\`` (as FHIR search does), so the
  first bare ``|`` always ends the system. No system (None) is the empty system.
- name: ``b"name\\x00" ‖ normalize_name(value)``: NFKC, casefolded, whitespace collapsed, the
  space between two CJK characters removed ("张 三" is "张三"), middle-dot variants unified.

The two prefixes keep an identifier's token from ever equalling a name's.

Where the blind-index key comes from: the group secret, via HKDF-SHA-256 with info
``b"medledger-blind-index/1"``, not the master key. Tokens are stored in search columns and
compared across the group's nodes; if they were derived from the master key, every master-key
rotation would change every token and force a re-index of all data (decrypting every payload),
and nodes with different master keys could not compare tokens at all. The group secret is
shared by every node and changes only by a deliberate re-indexing. The price: whoever holds the
group secret can test guesses against tokens (names are low-entropy), so it is guarded like the
master key (mode 0600 files or a container secret). HKDF keeps the blind-index key separate
from the pseudonym key (the raw group secret), so a token never equals a pseudonym.

Pseudonyms (DESIGN §3): ``HMAC(group secret, institution ‖ 0x00 ‖ patient id)``, lowercase hex,
64 characters, stable for the same patient at the same institution.
"""

from __future__ import annotations

import hmac
import os
import re
import unicodedata
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medledger.crypto.suite import HashFn, Suite
from medledger.errors import InputError
from medledger.records._secretfile import (
    check_format,
    read_secret_doc,
    secret_hex,
    write_secret_file,
)

__all__ = [
    "BLIND_INDEX_INFO",
    "GROUP_SECRET_ENV",
    "GROUP_SECRET_FORMAT",
    "BlindIndex",
    "GroupSecret",
    "blind_index_key",
    "generate_group_secret",
    "hmac_digest",
    "load_group_secret",
    "normalize_name",
    "pseudonym",
]

GROUP_SECRET_FORMAT = "medledger-group-secret/1"  # noqa: S105 - a format tag, not a secret
GROUP_SECRET_ENV = "MEDLEDGER_GROUP_SECRET"  # noqa: S105 - a variable name, not a secret
GROUP_SECRET_SIZE = 32
BLIND_INDEX_INFO = b"medledger-blind-index/1"
_BLOCK = 64  # SHA-256 and SM3 both compress 64-byte blocks
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_MIN_KEY = 16

# Middle-dot look-alikes used between the parts of transliterated names (买买提·艾力).
_DOTS = re.compile("[\u00b7\u2022\u2027\u2219\u22c5\u30fb]")
_CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f·"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def hmac_digest(suite: Suite, key: bytes, message: bytes) -> bytes:
    """Return HMAC(``key``, ``message``) with the suite's hash (RFC 2104)."""
    if suite.hash_name == "sha256":
        return hmac.digest(key, message, "sha256")
    inner, outer = _pads(suite.hash, key)
    return suite.hash(outer + suite.hash(inner + message))


def _pads(hash_fn: HashFn, key: bytes) -> tuple[bytes, bytes]:
    """Return the RFC 2104 inner and outer padded keys for a 64-byte-block hash."""
    if len(key) > _BLOCK:
        key = hash_fn(key)
    key = bytes(key).ljust(_BLOCK, b"\0")
    # translate() XORs every byte through a table: one C call instead of a Python loop.
    return key.translate(_IPAD), key.translate(_OPAD)


class BlindIndex:
    """Compute blind-index tokens: keyed, deterministic, one-way."""

    def __init__(self, key: bytes, suite: Suite) -> None:
        """Use ``key`` (from ``blind_index_key``) with the hash of ``suite``."""
        if not isinstance(key, bytes) or len(key) < _MIN_KEY:
            raise InputError(
                "blind-index key is too short",
                field="key",
                value="(redacted)",
                expected=f"at least {_MIN_KEY} bytes",
            )
        self.suite = suite
        self._key = key
        self._pads = None if suite.hash_name == "sha256" else _pads(suite.hash, key)

    @classmethod
    def from_group_secret(cls, secret: GroupSecret | bytes, suite: Suite) -> BlindIndex:
        """Return the index keyed by ``blind_index_key(secret)``."""
        return cls(blind_index_key(secret), suite)

    def __repr__(self) -> str:
        return f"BlindIndex(suite={self.suite.name!r})"

    def token(self, system: str | None, value: str) -> str:
        """Return the hex token of identifier ``value`` in ``system`` (None: no system)."""
        text = _clean(value, "value")
        sys_text = "" if system is None else _clean(system, "system", allow_empty=True)
        sys_text = sys_text.replace("\\", "\\\\").replace("|", "\\|")
        return self._mac(b"id\x00" + f"{sys_text}|{text}".encode()).hex()

    def name(self, value: str) -> str:
        """Return the hex token of the person name ``value`` (see ``normalize_name``)."""
        return self._mac(b"name\x00" + normalize_name(value).encode()).hex()

    def _mac(self, message: bytes) -> bytes:
        if self._pads is None:
            return hmac.digest(self._key, message, "sha256")
        inner, outer = self._pads
        return self.suite.hash(outer + self.suite.hash(inner + message))


def normalize_name(value: str) -> str:
    """Return the search form of a name: NFKC, casefolded, single spaces, no CJK gaps.

    "张 三", "张　三" and "张三" agree; "Zhang  SAN" and "zhang san" agree; "买买提 • 艾力"
    and "买买提·艾力" agree. Traditional and simplified characters are not unified.
    """
    text = _clean(value, "name")
    # Casefolding can produce sequences that are no longer NFKC; normalize again after it.
    text = unicodedata.normalize("NFKC", text.casefold())
    text = " ".join(_DOTS.sub("·", text).split())
    return _CJK_GAP.sub("", text)


def pseudonym(
    group_secret: GroupSecret | bytes, institution: str, patient_id: str, suite: Suite
) -> str:
    """Return the on-chain subject id of a patient: 64 lowercase hex, stable, one-way.

    Both ids are NFKC-normalized and stripped first, so full-width digits from one system and
    ASCII digits from another give the same pseudonym.
    """
    secret = _secret_bytes(group_secret)
    inst = _clean(institution, "institution")
    if "\0" in inst:
        # NUL separates the two ids; allowing it in the first would make pairs collide.
        raise InputError(
            "institution id contains NUL", field="institution", value=inst, expected="no NUL"
        )
    patient = _clean(patient_id, "patient_id")
    return hmac_digest(suite, secret, inst.encode() + b"\0" + patient.encode()).hex()


@dataclass(frozen=True)
class GroupSecret:
    """The 32-byte secret every node of the group shares (pseudonyms, blind indexes)."""

    secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "GroupSecret(<redacted>)"


def generate_group_secret(path: str | os.PathLike[str]) -> GroupSecret:
    """Create a random group secret and write it to the new file ``path`` with mode 0600.

    Generate it once for the whole group and copy the file to every node.
    """
    secret = GroupSecret(os.urandom(GROUP_SECRET_SIZE))
    doc = {"format": GROUP_SECRET_FORMAT, "secret": secret.secret.hex()}
    write_secret_file(path, doc, "group secret")
    return secret


def load_group_secret(path: str | os.PathLike[str] | None) -> GroupSecret:
    """Load the group secret from ``path``, or from ``$MEDLEDGER_GROUP_SECRET`` if None.

    Raise ``StateError`` if there is neither or the file is group/other-accessible, and
    ``MalformedDocument`` naming the field for bad content.
    """
    doc = read_secret_doc(path, GROUP_SECRET_ENV, "group secret", ("format", "secret"))
    check_format(doc, GROUP_SECRET_FORMAT)
    return GroupSecret(secret_hex(doc, "secret", GROUP_SECRET_SIZE))


def blind_index_key(group_secret: GroupSecret | bytes) -> bytes:
    """Derive the 32-byte blind-index key from the group secret (HKDF-SHA-256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=BLIND_INDEX_INFO)
    return hkdf.derive(_secret_bytes(group_secret))


def _secret_bytes(group_secret: GroupSecret | bytes) -> bytes:
    secret = group_secret.secret if isinstance(group_secret, GroupSecret) else group_secret
    if not isinstance(secret, bytes) or len(secret) < _MIN_KEY:
        raise InputError(
            "group secret is too short",
            field="group_secret",
            value="(redacted)",
            expected=f"at least {_MIN_KEY} bytes",
        )
    return secret


def _clean(value: object, name: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` NFKC-normalized and stripped; refuse non-strings and blanks."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string", field=name, value=type(value).__name__)
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{name} is not valid Unicode", field=name, expected="no lone surrogates"
        ) from None
    if not text and not allow_empty:
        raise InputError(f"{name} is blank", field=name, expected="a non-blank string")
    return text
