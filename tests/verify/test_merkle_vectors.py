"""The shared RFC 6962 golden vectors (transparency-dev/merkle testdata) against our verifier."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto.rfc6962 import MerkleHasher
from medledger.errors import ProofInvalid
from medledger.ledger.compact import Frontier
from medledger.ledger.tree import MemoryNodes, consistency_proof, inclusion_proof, root_at
from medledger.verify.merkle import verify_consistency, verify_inclusion
from tests import reference_merkle as ref

# shared/ is the sibling of the repository root, both on a developer's machine and in CI.
VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "rfc6962"
INCLUSION = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").rglob("*.json"))

ENTRIES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

HASHER = MerkleHasher(lambda data: hashlib.sha256(data).digest())


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    case["proof"] = [base64.b64decode(p) for p in case["proof"] or []]
    for key in ("root", "leafHash", "root1", "root2"):
        if key in case:
            case[key] = base64.b64decode(case[key])
    return case


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _tree() -> MemoryNodes:
    store = MemoryNodes()
    store.put_all(Frontier(HASHER).extend(HASHER.leaf_hash(e) for e in ENTRIES))
    return store


def test_vectors_present() -> None:
    """The shared vectors are where CI expects them: a missing directory fails, never skips."""
    assert VECTORS.is_dir(), f"RFC 6962 vectors not found at {VECTORS.resolve()}"
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    """verify_inclusion accepts exactly the vectors with wantErr false."""
    c = _load(path)
    if c["wantErr"]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(
                HASHER, c["leafIdx"], c["treeSize"], c["leafHash"], c["proof"], c["root"]
            )
    else:
        verify_inclusion(HASHER, c["leafIdx"], c["treeSize"], c["leafHash"], c["proof"], c["root"])


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    """verify_consistency accepts exactly the vectors with wantErr false."""
    c = _load(path)
    args = (HASHER, c["size1"], c["size2"], c["proof"], c["root1"], c["root2"])
    if c["wantErr"]:
        with pytest.raises(ProofInvalid):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize("path", [p for p in INCLUSION if p.name == "happy-path.json"], ids=_id)
def test_inclusion_happy_path_matches_our_proof(path: Path) -> None:
    """Our prover emits byte-for-byte the proof of each valid inclusion vector."""
    c = _load(path)
    assert inclusion_proof(_tree(), HASHER, c["leafIdx"], c["treeSize"]) == c["proof"]
    assert root_at(_tree(), HASHER, c["treeSize"]) == c["root"]


@pytest.mark.parametrize("path", [p for p in CONSISTENCY if p.name == "happy-path.json"], ids=_id)
def test_consistency_happy_path_matches_our_proof(path: Path) -> None:
    """Our prover emits byte-for-byte the proof of each valid consistency vector."""
    c = _load(path)
    assert consistency_proof(_tree(), HASHER, c["size1"], c["size2"]) == c["proof"]


@pytest.mark.parametrize("size", range(9))
def test_root_table(size: int) -> None:
    """Frontier, stored-node and reference roots all equal the README's table for sizes 0..8."""
    frontier = Frontier(HASHER)
    frontier.extend(HASHER.leaf_hash(e) for e in ENTRIES[:size])
    assert frontier.root().hex() == ROOTS[size]
    assert root_at(_tree(), HASHER, size).hex() == ROOTS[size]
    assert ref.mth(ENTRIES[:size]).hex() == ROOTS[size]
