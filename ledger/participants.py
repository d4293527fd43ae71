"""The participant commitment of a large round (`TrainingLedger.finalizeLargeRound`).

A large round's participants are committed as a hash chain over their dataset ids in
ascending order, h_0 = 0 and h_i = keccak256(h_{i-1} ++ uint256(id_i)), exactly as the
contract folds each batch (`TrainingLedger._foldParticipants`). The chain does not depend on
how the ids were split into batches, so the coordinator, the contract and an auditor who
reads the manifest compute the same value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eth_utils.crypto import keccak

from ledger.errors import InvalidArgumentError

# Largest participant count a round may commit with the bitmask (`TrainingLedger.MAX_DATASETS`).
MASK_CAPACITY = 256
# Participants per addRoundParticipants transaction: ~2.8M gas, far below a block, and
# large enough that the 21k transaction base is ~40 gas per participant.
DEFAULT_BATCH = 500

ZERO_HASH = bytes(32)


def participants_hash(dataset_ids: Sequence[int]) -> bytes:
    """The contract's hash chain over `dataset_ids` (which must be strictly ascending)."""
    for previous, dataset_id in zip([0, *dataset_ids], dataset_ids, strict=False):
        if dataset_id <= previous:
            raise InvalidArgumentError(
                f"large-round participants must be strictly ascending: 0x{dataset_id:064x} follows "
                f"0x{previous:064x}"
            )
    return hash_chain(dataset_ids)


def hash_chain(dataset_ids: Sequence[int]) -> bytes:
    """The hash chain over `dataset_ids` as given, unchecked (the auditor hashes what it is shown)."""
    digest = ZERO_HASH
    for dataset_id in dataset_ids:
        digest = keccak(digest + dataset_id.to_bytes(32, "big"))
    return digest


def batches(dataset_ids: Sequence[int], size: int = DEFAULT_BATCH) -> Iterator[list[int]]:
    """`dataset_ids` in consecutive slices of at most `size` (the addRoundParticipants calls)."""
    if size < 1:
        raise InvalidArgumentError(f"a participant batch holds at least 1 dataset, not {size}")
    for start in range(0, len(dataset_ids), size):
        yield list(dataset_ids[start : start + size])
