"""The coordinator's fold over updates read back with LocalBlockstore.get_buffer: same bytes as
aggregate_updates, and the buffers it read are left as the store gave them."""

from __future__ import annotations

from pathlib import Path

import torch

from ledger.aggregation import BLOCK, StreamingFedAvg, aggregate_updates
from ledger.modelfile import model_to_bytes
from ledger.store import LocalBlockstore


def test_fold_from_store_buffers_is_byte_identical(tmp_path: Path) -> None:
    rng = torch.Generator().manual_seed(5)
    store = LocalBlockstore(tmp_path / "store")
    ids = [3, 8, 21, 40]
    # Several 256 KiB blocks per update and several fold blocks, with a ragged tail.
    files = {
        i: model_to_bytes(
            {"a.weight": torch.randn(BLOCK + 4321, generator=rng), "b.bias": torch.randn(7, generator=rng)}
        )
        for i in ids
    }
    counts = {i: 10 * i + 1 for i in ids}
    cids = {i: store.put(files[i]) for i in ids}
    fold = StreamingFedAvg(hold_bytes=0)
    for i in reversed(ids):
        assert not fold.offer(i, files[i], counts[i])
    read: dict[int, bytearray] = {}

    def load(key: int) -> bytearray:
        read[key] = store.get_buffer(cids[key])
        return read[key]

    expected = aggregate_updates([files[i] for i in ids], [counts[i] for i in ids])
    assert fold.result(ids, load) == expected
    assert sorted(read) == ids
    assert all(read[i] == files[i] for i in ids)  # the fold only reads the buffers
