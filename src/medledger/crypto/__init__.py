"""Crypto suites, RFC 6962 hashing, RFC 8785 canonical JSON, key files and trust bundles.

Suites are looked up by name with ``get_suite``; the suite modules themselves (and their
libraries) load on first use.
"""

from medledger.crypto.canonical import canonical_bytes, parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.keys import (
    SIGNING_KEY_FORMAT,
    key_id,
    read_signing_key,
    write_signing_key,
)
from medledger.crypto.registry import SUITES, get_suite
from medledger.crypto.rfc6962 import MerkleHasher
from medledger.crypto.suite import Aead, HashFn, SigningKey, Suite, VerifyKey
from medledger.crypto.trust import (
    TRUST_BUNDLE_FORMAT,
    TrustBundle,
    TrustedKey,
    load_trust_bundle,
)

__all__ = [
    "SIGNING_KEY_FORMAT",
    "SUITES",
    "TRUST_BUNDLE_FORMAT",
    "Aead",
    "HashFn",
    "MerkleHasher",
    "SigningKey",
    "Suite",
    "TrustBundle",
    "TrustedKey",
    "VerifyKey",
    "canonical_bytes",
    "from_hex",
    "get_suite",
    "key_id",
    "load_trust_bundle",
    "parse_json_object",
    "read_signing_key",
    "write_signing_key",
]
