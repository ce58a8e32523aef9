"""JOSE glue: the node's token algorithms (including SM2, which JOSE lacks) and JWS registries.

**The SM2 algorithm.** No JOSE ``alg`` exists for SM2: the IANA "JSON Web Signature and
Encryption Algorithms" registry lists none and no RFC defines one. MedLedger uses the
unregistered name ``SM2SM3``: an SM2 signature (GB/T 32918.2) with SM3 and the default user id
``1234567812345678`` (GM/T 0009), over the JWS signing input, carried as ``r ‖ s`` (two 32-byte
big-endian integers, the fixed-length layout RFC 7518 §3.4 uses for ES256). That is byte for
byte what the ``sm-v1`` suite of ``medledger.crypto`` produces, so ``sign``/``verify`` simply
delegate to the node's suite key. Only verifiers that implement this note understand such
tokens; the public JWK we publish for it (``{"kty": "EC", "crv": "SM2", …}``) is unregistered
too.

**Ed25519.** Under ``intl-v1`` the ``alg`` is ``EdDSA`` (RFC 8037) with Ed25519. The signature
is the RFC 8032 one the suite makes (PyNaCl), so any JOSE library verifies these tokens with the
node's OKP public JWK. RFC 9864 deprecates the name ``EdDSA`` in favour of ``Ed25519``; we keep
``EdDSA`` because that is what deployed verifiers understand today.

Both node algorithms are ``JWSAlgModel`` subclasses whose keys are ``medledger.crypto`` key
objects (never JWKs; the code never reads key files). They live in ``NodeJWSRegistry``, a
``JWSRegistry`` subclass with its own algorithm table: joserfc's default registry is left
untouched, and ``none``, ``HS256`` and the rest do not exist in ours at all.

``ClientAssertionRegistry`` is the other table: the algorithms a client may sign a private-key
JWT assertion with (SMART backend services: ES384 and RS384, plus ES256, EdDSA and Ed25519, and
``SM2SM3`` for a client that registered an ``{"kty": "EC", "crv": "SM2"}`` key; the client
signs with the default user id, as above).
"""

from __future__ import annotations

import re
from typing import Any

from joserfc.errors import InvalidKeyTypeError
from joserfc.jwa import EdDSAAlgorithm, JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.registry import JWS_HEADER_REGISTRY, HeaderRegistryDict
from joserfc.util import urlsafe_b64encode

from medledger.crypto.suite import Suite
from medledger.errors import TokenInvalid

__all__ = [
    "CLIENT_ASSERTION_ALGS",
    "EDDSA",
    "MAX_COMPACT_LENGTH",
    "SM2SM3",
    "ClientAssertionRegistry",
    "NodeJWSRegistry",
    "SuiteAlgorithm",
    "alg_for",
    "check_compact",
    "public_jwk",
]

MAX_COMPACT_LENGTH = 8192
"""Longest JWS we look at; anything longer is refused as malformed before it is decoded."""

# Three base64url segments; the signature may be empty so that alg "none" reaches the alg check.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class SuiteAlgorithm(JWSAlgModel):
    """A JWS algorithm whose keys are one ``medledger.crypto`` suite's key objects.

    ``sign`` takes the suite's ``SigningKey``, ``verify`` its ``VerifyKey``; both delegate to
    the suite, so a token signature is exactly a suite signature of the JWS signing input.
    """

    key_type = "medledger-suite"  # not a JWK "kty": these keys are never JWKs
    recommended = False

    def __init__(self, name: str, suite: str, public_key_size: int, description: str) -> None:
        """Name the ``alg``, the suite it belongs to and that suite's public key size."""
        self.name = name
        self.suite = suite
        self.public_key_size = public_key_size
        self.description = description

    def check_key(self, key: Any) -> None:
        """Refuse a key of another suite (told apart by its public key size)."""
        public = getattr(key, "public_bytes", None)
        if not isinstance(public, bytes) or len(public) != self.public_key_size:
            raise InvalidKeyTypeError(f"Algorithm '{self.name}' needs a {self.suite} key")

    def sign(self, msg: bytes, key: Any) -> bytes:
        """Return the suite signature of ``msg`` made with the node's ``SigningKey``."""
        self.check_key(key)
        signature: bytes = key.sign(msg)
        return signature

    def verify(self, msg: bytes, sig: bytes, key: Any) -> bool:
        """Return True if ``sig`` is the suite signature of ``msg`` under ``key``; never raises."""
        self.check_key(key)
        return bool(key.verify(sig, msg))


EDDSA = SuiteAlgorithm("EdDSA", "intl-v1", 32, "Ed25519 (RFC 8032) with the intl-v1 node key")
SM2SM3 = SuiteAlgorithm(
    "SM2SM3", "sm-v1", 65, "SM2 with SM3, r || s (GB/T 32918.2) with the sm-v1 node key"
)
_BY_SUITE = {EDDSA.suite: EDDSA, SM2SM3.suite: SM2SM3}

# Only what a token we issue carries: alg, typ, kid. "b64" (RFC 7797), "jwk", "x5c" and the
# other key-carrying headers are unsupported and so refused by the strict header check.
_NODE_HEADERS: HeaderRegistryDict = {k: JWS_HEADER_REGISTRY[k] for k in ("alg", "typ", "kid")}


class NodeJWSRegistry(JWSRegistry):
    """The node's own algorithms and nothing else, with tight size limits."""

    default_header_registry = _NODE_HEADERS
    algorithms: dict[str, JWSAlgModel] = {}  # noqa: RUF012 (joserfc's registry is a class table)
    recommended: list[str] = []  # noqa: RUF012
    max_header_length = 256
    max_payload_length = MAX_COMPACT_LENGTH
    max_signature_length = 128

    @classmethod
    def for_suite(cls, suite: Suite) -> NodeJWSRegistry:
        """Return a registry that allows exactly ``suite``'s algorithm."""
        return cls(algorithms=[alg_for(suite).name])


NodeJWSRegistry.register(EDDSA)
NodeJWSRegistry.register(SM2SM3)


class _EdDSA(EdDSAAlgorithm):
    """RFC 8037 ``EdDSA`` without joserfc's RFC 9864 deprecation warning.

    SMART clients still sign with ``EdDSA``; the warning would be raised on every assertion.
    """

    security_warning = None  # type: ignore[assignment]  # the base allows None, the subclass says str


# SMART backend services: clients SHALL support RS384 or ES384; ES256, EdDSA and Ed25519 too,
# and SM2SM3 for clients of sm-v1 deployments that registered an SM2 key.
CLIENT_ASSERTION_ALGS: tuple[str, ...] = (
    "ES256",
    "ES384",
    "RS384",
    "EdDSA",
    "Ed25519",
    "SM2SM3",
)

# "jku" is allowed (SMART lets clients name their JWKS URL; we ignore it and use the registered
# key); "jwk", "x5c", "x5u" and "b64" are not.
_CLIENT_HEADERS: HeaderRegistryDict = {
    k: JWS_HEADER_REGISTRY[k] for k in ("alg", "typ", "kid", "jku")
}


class ClientAssertionRegistry(JWSRegistry):
    """The algorithms a client may sign a private-key JWT assertion with."""

    default_header_registry = _CLIENT_HEADERS
    algorithms: dict[str, JWSAlgModel] = {}  # noqa: RUF012
    recommended: list[str] = []  # noqa: RUF012
    max_header_length = 1024
    max_payload_length = MAX_COMPACT_LENGTH
    max_signature_length = 1024

    @classmethod
    def allowing(cls, algs: tuple[str, ...] = CLIENT_ASSERTION_ALGS) -> ClientAssertionRegistry:
        """Return a registry that allows ``algs`` (a subset of ``CLIENT_ASSERTION_ALGS``)."""
        return cls(algorithms=list(algs))


for _name in ("ES256", "ES384", "RS384", "Ed25519"):
    ClientAssertionRegistry.register(JWSRegistry.algorithms[_name])
ClientAssertionRegistry.register(_EdDSA())
ClientAssertionRegistry.register(SM2SM3)


def alg_for(suite: Suite) -> SuiteAlgorithm:
    """Return the token algorithm of ``suite`` (``EdDSA`` or ``SM2SM3``)."""
    return _BY_SUITE[suite.name]


def check_compact(token: object, what: str) -> bytes:
    """Return ``token`` as ASCII bytes if it looks like a compact JWS; else ``TokenInvalid``.

    Checked before anything is decoded: a string, at most ``MAX_COMPACT_LENGTH`` characters,
    three base64url segments. The token itself never appears in the error.
    """
    if not isinstance(token, str):
        raise TokenInvalid(f"{what} is not a string", reason="malformed")
    if len(token) > MAX_COMPACT_LENGTH:
        raise TokenInvalid(
            f"{what} is longer than {MAX_COMPACT_LENGTH} characters",
            reason="malformed",
            length=len(token),
        )
    if not _COMPACT.fullmatch(token):
        raise TokenInvalid(f"{what} is not a compact JWS", reason="malformed")
    return token.encode("ascii")


def public_jwk(suite: Suite, public_bytes: bytes, kid: str) -> dict[str, str]:
    """Return the public JWK of a node key, for a JWKS endpoint.

    ``intl-v1``: an RFC 8037 OKP Ed25519 key. ``sm-v1``: ``{"kty": "EC", "crv": "SM2"}`` with
    the point's x and y (unregistered, see the module docstring).
    """
    alg = alg_for(suite)
    raw = bytes(public_bytes)
    alg.check_key(_Public(raw))
    if alg is EDDSA:
        fields = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    else:
        fields = {"kty": "EC", "crv": "SM2", "x": _b64(raw[1:33]), "y": _b64(raw[33:])}
    return {**fields, "alg": alg.name, "use": "sig", "kid": kid}


class _Public:
    """Just enough of a key for ``SuiteAlgorithm.check_key``."""

    def __init__(self, raw: bytes) -> None:
        self.public_bytes = raw


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).decode("ascii")
