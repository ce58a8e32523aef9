"""The in-memory batch tree equals RFC 6962's, and every inclusion path verifies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.access.audit_merkle import inclusion_path, leaf_hashes, merkle_root
from medledger.crypto.registry import get_suite
from medledger.crypto.rfc6962 import hasher_for
from medledger.errors import InputError, ProofInvalid
from medledger.verify.merkle import verify_inclusion
from tests.reference_merkle import mth, path

SHA = hasher_for(get_suite("intl-v1"))
SM3 = hasher_for(get_suite("sm-v1"))


def _events(n: int) -> list[bytes]:
    return [f'{{"id":"e{i}","resourceType":"AuditEvent"}}'.encode() for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33])
def test_root_and_paths_match_the_rfc_reference(n: int) -> None:
    """Root and every path equal the recursive RFC 6962 §2.1 definitions (SHA-256)."""
    events = _events(n)
    leaves = leaf_hashes(SHA, events)
    assert merkle_root(SHA, leaves) == mth(events)
    for m in range(n):
        assert inclusion_path(SHA, leaves, m) == path(m, events)


@settings(max_examples=60)
@given(
    n=st.integers(min_value=1, max_value=300),
    pick=st.integers(min_value=0, max_value=10**6),
    flip=st.integers(min_value=0, max_value=10**6),
    sm=st.booleans(),
)
def test_every_path_verifies_and_a_flipped_byte_fails(
    n: int, pick: int, flip: int, sm: bool
) -> None:
    """For batches of 1..300 events every leaf verifies; one flipped byte in it never does."""
    hasher = SM3 if sm else SHA
    events = _events(n)
    leaves = leaf_hashes(hasher, events)
    root = merkle_root(hasher, leaves)
    for m in range(n):
        verify_inclusion(hasher, m, n, leaves[m], inclusion_path(hasher, leaves, m), root)
    m = pick % n
    event = bytearray(events[m])
    event[flip % len(event)] ^= 0x01
    with pytest.raises(ProofInvalid):
        verify_inclusion(
            hasher, m, n, hasher.leaf_hash(bytes(event)), inclusion_path(hasher, leaves, m), root
        )


def test_out_of_range_index_is_refused() -> None:
    """A path for a leaf the batch does not hold is an InputError naming the bound."""
    with pytest.raises(InputError, match="out of bounds for batch size 2"):
        inclusion_path(SHA, leaf_hashes(SHA, _events(2)), 2)
    assert merkle_root(SHA, []) == SHA.empty_root()
