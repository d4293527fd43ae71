"""Merkle roots and proofs: properties, and the fold OpenZeppelin's MerkleProof performs."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import MerkleError, hash_pair, merkle_proof, merkle_root, verify_proof

leaf_sets = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True)


@settings(max_examples=150, deadline=None)
@given(leaf_sets)
def test_every_leaf_proof_verifies(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        assert verify_proof(leaf, merkle_proof(leaves, i), root)


@settings(max_examples=150, deadline=None)
@given(leaf_sets, st.data())
def test_a_changed_leaf_does_not_verify(leaves: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    bit = data.draw(st.integers(0, 255))
    changed = bytearray(leaves[i])
    changed[bit // 8] ^= 1 << (bit % 8)
    assert not verify_proof(bytes(changed), merkle_proof(leaves, i), root)
    assert merkle_root([bytes(changed) if j == i else x for j, x in enumerate(leaves)]) != root


@settings(max_examples=100, deadline=None)
@given(leaf_sets, st.randoms())
def test_root_does_not_depend_on_leaf_order(leaves: list[bytes], rnd: object) -> None:
    shuffled = list(leaves)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merkle_root(shuffled) == merkle_root(leaves)


def test_small_trees_by_hand() -> None:
    a, b, c = sorted(keccak(text=x) for x in "abc")
    assert merkle_root([a]) == a and merkle_proof([a], 0) == []
    ab = keccak(a + b)
    assert merkle_root([b, a]) == ab == hash_pair(b, a)
    # Odd level: c is promoted unchanged, then paired with hash(a, b).
    assert merkle_root([c, a, b]) == hash_pair(ab, c)
    assert merkle_proof([c, a, b], 0) == [ab]
    assert merkle_proof([c, a, b], 1) == [b, c]


def test_unusable_leaves_are_refused_with_the_reason() -> None:
    leaf = keccak(text="x")
    with pytest.raises(MerkleError, match="at least one leaf; got none"):
        merkle_root([])
    with pytest.raises(MerkleError, match="leaf 1 must be 32 bytes; got 31"):
        merkle_root([leaf, leaf[:31]])
    with pytest.raises(MerkleError, match=f"distinct; 0x{leaf.hex()} appears more than once"):
        merkle_root([leaf, leaf])
    with pytest.raises(MerkleError, match="leaf index 2 is out of range for 2 leaves") as caught:
        merkle_proof([leaf, keccak(text="y")], 2)
    assert isinstance(caught.value, ValueError)
