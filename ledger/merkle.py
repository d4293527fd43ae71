"""Merkle roots and proofs that a Solidity verifier accepts.

The tree hashes pairs commutatively, `keccak256(min(a, b) ++ max(a, b))`, exactly as
OpenZeppelin's `MerkleProof.verify` folds a proof, so a proof produced here verifies
on-chain without position bits. Leaves are 32-byte digests (for round manifests: the
EIP-712 digests of the nodes' attestations); they are sorted before building, so the
root depends on the set of leaves, not on the order a coordinator happened to list them.

A level with an odd number of nodes promotes its last node unchanged (no duplication:
duplicating would let two different leaf sets share a root).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from eth_utils.crypto import keccak

from ledger.errors import LedgerError

LEAF_SIZE = 32


class MerkleError(LedgerError, ValueError):
    """Leaves or an index given to a Merkle function are not usable."""


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two nodes in ascending byte order (OpenZeppelin's commutative hash)."""
    return keccak(a + b) if a <= b else keccak(b + a)


def _sorted_leaves(leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 0:
        raise MerkleError("a Merkle tree needs at least one leaf; got none")
    for position, leaf in enumerate(leaves):
        if not isinstance(leaf, bytes | bytearray) or len(leaf) != LEAF_SIZE:
            size = len(leaf) if isinstance(leaf, bytes | bytearray) else type(leaf).__name__
            raise MerkleError(f"leaf {position} must be {LEAF_SIZE} bytes; got {size}")
    ordered = sorted(bytes(leaf) for leaf in leaves)
    for previous, current in pairwise(ordered):
        if previous == current:
            # A repeated leaf would count one attestation twice under one root.
            raise MerkleError(f"leaves must be distinct; 0x{current.hex()} appears more than once")
    return ordered


def _next_level(level: list[bytes]) -> list[bytes]:
    parents = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2 == 1:
        parents.append(level[-1])
    return parents


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over `leaves` (32-byte, distinct, any order); a single leaf is its own root."""
    level = _sorted_leaves(leaves)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes proving `leaves[index]` (index into the sequence as given) is under the root."""
    if not 0 <= index < len(leaves):
        raise MerkleError(f"leaf index {index} is out of range for {len(leaves)} leaves")
    level = _sorted_leaves(leaves)
    position = level.index(bytes(leaves[index]))
    proof: list[bytes] = []
    while len(level) > 1:
        sibling = position ^ 1
        # The promoted last node of an odd level has no sibling at this level.
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        position //= 2
    return proof


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether folding `proof` onto `leaf` gives `root` (what `MerkleProof.verify` computes)."""
    computed = bytes(leaf)
    for sibling in proof:
        computed = hash_pair(computed, bytes(sibling))
    return computed == bytes(root)
