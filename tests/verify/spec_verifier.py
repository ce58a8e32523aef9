"""An independent verifier written from docs/certificate.md alone (intl-v1).

It imports no MedLedger code: if it and medledger.verify ever disagree, the specification,
the files or the code has drifted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import nacl.exceptions
import nacl.signing
import rfc8785


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _hex(s: Any, size: int | None = None) -> bytes:
    if not isinstance(s, str) or s != s.lower():
        raise ValueError("not lowercase hex")
    b = bytes.fromhex(s)
    if size is not None and len(b) != size:
        raise ValueError("wrong size")
    return b


def _signed_ok(header: dict[str, Any], trust: dict[str, Any]) -> bool:
    body = {k: v for k, v in header.items() if k != "signatures"}
    if set(body) != {"v", "chain", "height", "prev", "tree_size", "root", "ts", "proposer"}:
        return False
    if body["chain"] != trust["chain"]:
        return False
    message = rfc8785.dumps(body)
    keys = {}
    for k in trust["keys"]:
        pub = _hex(k["public_key"], 32)
        if H(pub).hex()[:16] != k["key_id"]:
            return False
        keys[k["key_id"]] = pub
    good = set()
    for s in header["signatures"]:
        pub = keys.get(s["key_id"])
        if pub is None:
            continue
        try:
            nacl.signing.VerifyKey(pub).verify(message, _hex(s["sig"], 64))
            good.add(s["key_id"])
        except nacl.exceptions.BadSignatureError:
            pass
    return len(good) >= trust["quorum"]


def _inclusion_root(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = H(b"\x01" + p + r)
            while fn != 0 and fn % 2 == 0:
                fn >>= 1
                sn >>= 1
        else:
            r = H(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify(cert: dict[str, Any], trust: dict[str, Any], payload: bytes | None = None) -> bool:
    """Return True iff the certificate is valid per docs/certificate.md §7."""
    try:
        if cert["format"] != "medledger-cert/1" or cert["suite"] != trust["suite"]:
            return False
        allowed = {
            "format",
            "suite",
            "entry",
            "leaf_index",
            "inclusion_proof",
            "header",
            "payload_salt",
        }
        if set(cert) - allowed or cert["header"]["v"] != 1:
            return False
        header = cert["header"]
        if not _signed_ok(header, trust):
            return False
        leaf = H(b"\x00" + rfc8785.dumps(cert["entry"]))
        proof = [_hex(p, 32) for p in cert["inclusion_proof"]]
        root = _inclusion_root(cert["leaf_index"], header["tree_size"], leaf, proof)
        if root is None or root != _hex(header["root"], 32):
            return False
        if payload is not None:
            salt = _hex(cert["payload_salt"])
            want = cert["entry"]["payload_hash"]
            options = [H(salt + payload).hex()]
            with contextlib.suppress(ValueError):
                options.append(H(salt + rfc8785.dumps(json.loads(payload))).hex())
            return want in options
        return True
    except (KeyError, TypeError, ValueError):
        return False
