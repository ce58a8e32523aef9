"""Issue certificates and consistency documents from a store (the server side of verify/)."""

from __future__ import annotations

import json
from typing import Any

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.crypto.suite import Suite
from medledger.errors import InputError, NotFound
from medledger.ledger import tree
from medledger.ledger.proof import MAX_INDEX
from medledger.ledger.storage import LedgerReader, StoredBlock
from medledger.verify.certificate import CERT_FORMAT, CONSISTENCY_FORMAT
from medledger.verify.header import SignedHeader


def header_of(block: StoredBlock) -> SignedHeader:
    """Rebuild the signed header from a stored block row."""
    body = json.loads(block.header)
    body["signatures"] = [{"key_id": k, "sig": s.hex()} for k, s in block.signatures]
    return SignedHeader.from_json(body, field=f"block[{block.height}].header")


def issue(
    reader: LedgerReader,
    suite: Suite,
    hasher: MerkleHasher,
    index: int,
    *,
    payload_salt: bytes | None = None,
) -> dict[str, Any]:
    """Return the ``medledger-cert/1`` certificate of entry ``index``.

    The header is the block that committed the entry, so the certificate never changes; a
    holder proves it against a newer head with a consistency document.
    """
    if not 0 <= index <= MAX_INDEX:
        raise InputError(
            f"index {index} is out of range",
            field="index",
            value=index,
            expected=f"0 .. {MAX_INDEX}",
        )
    block = reader.block_covering(index)
    header = header_of(block)
    proof = tree.inclusion_proof(reader, hasher, index, header.tree_size, memo=_memo(reader))
    cert: dict[str, Any] = {
        "format": CERT_FORMAT,
        "suite": suite.name,
        "entry": json.loads(reader.get_entry(index)),
        "leaf_index": index,
        "inclusion_proof": [h.hex() for h in proof],
        "header": header.to_json(),
    }
    if payload_salt is not None:
        cert["payload_salt"] = payload_salt.hex()
    return cert


def _memo(reader: LedgerReader) -> tree.Memo | None:
    memo = getattr(reader, "memo", None)
    return memo if isinstance(memo, dict) else None


def consistency_document(
    reader: LedgerReader,
    suite: Suite,
    hasher: MerkleHasher,
    from_size: int,
    to_size: int | None = None,
) -> dict[str, Any]:
    """Return a ``medledger-consistency/1`` document between two signed heads.

    Both sizes must be tree sizes of signed heads (block boundaries); ``to_size`` defaults to
    the newest head. Requires 0 < from_size <= to_size.
    """
    for name, size in (("from", from_size), ("to", to_size)):
        if size is not None and not 0 <= size <= MAX_INDEX:
            raise InputError(
                f"{name} size {size} is out of range",
                field=name,
                value=size,
                expected=f"0 .. {MAX_INDEX}",
            )
    latest = reader.latest_block()
    assert latest is not None
    new_block = latest if to_size is None else _head_at(reader, to_size, "to")
    if from_size <= 0:
        raise InputError(
            "a consistency proof from the empty tree proves nothing",
            field="from",
            value=from_size,
            expected="a tree size > 0",
        )
    if from_size > new_block.tree_size:
        raise InputError(
            f"from size {from_size} is beyond to size {new_block.tree_size}",
            field="from",
            value=from_size,
            expected=f"<= {new_block.tree_size}",
        )
    old_block = _head_at(reader, from_size, "from")
    proof = tree.consistency_proof(reader, hasher, from_size, new_block.tree_size)
    return {
        "format": CONSISTENCY_FORMAT,
        "suite": suite.name,
        "from": header_of(old_block).to_json(),
        "to": header_of(new_block).to_json(),
        "proof": [h.hex() for h in proof],
    }


def _head_at(reader: LedgerReader, size: int, field: str) -> StoredBlock:
    block = reader.block_at_size(size)
    if block is None:
        latest = reader.latest_block()
        top = 0 if latest is None else latest.tree_size
        raise NotFound(
            f"no signed head at tree size {size}; heads exist only at block boundaries "
            f"(`medledger log` lists them; the newest is at tree size {top})",
            field=field,
            value=size,
            expected="the tree_size of a block",
        )
    return block
