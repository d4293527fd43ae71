"""CID parity with an independent UnixFS implementation (npm `ipfs-unixfs-importer`).

The oracle runs in Node.js with Kubo's CIDv1 defaults (raw leaves, 262144-byte chunks,
balanced layout, 174 links per node). Sizes cover every boundary: empty, one byte, one
chunk minus/exactly/plus one byte, one full node of 174 leaves and one leaf more (the
first two-level tree), a few MiB and tens of MiB; contents are random and repetitive
(repetitive content has identical leaves, so deduplication must not change the DAG).
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.store import CHUNK_SIZE, MAX_LINKS, cid_of, cid_of_file
from ledger.store.unixfs import import_bytes, import_stream

CidOracle = Callable[..., list[str]]

SIZES = [
    0,
    1,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    MAX_LINKS * CHUNK_SIZE,
    MAX_LINKS * CHUNK_SIZE + 1,
    3 * 1024 * 1024 + 7,
    30 * 1024 * 1024 + 12345,
]


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _repetitive_bytes(size: int) -> bytes:
    pattern = b"federated-learning-ledger\n"
    return (pattern * (size // len(pattern) + 1))[:size]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "repetitive"])
def test_cids_equal_the_npm_importer_across_sizes(kind: str, tmp_path: Path, cid_oracle: CidOracle) -> None:
    paths: list[Path] = []
    ours: list[str] = []
    for index, size in enumerate(SIZES):
        data = _random_bytes(size, index) if kind == "random" else _repetitive_bytes(size)
        path = tmp_path / f"{kind}-{size}.bin"
        path.write_bytes(data)
        paths.append(path)
        from_bytes = cid_of(data)
        # the streaming path must agree with the in-memory one
        assert cid_of_file(path) == from_bytes, size
        ours.append(from_bytes)
        del data
    expected = cid_oracle(paths)
    for size, mine, theirs in zip(SIZES, ours, expected, strict=True):
        assert mine == theirs, f"size {size}: ours {mine}, npm importer {theirs}"
    # sanity on the shape: at most one chunk is a raw block, more is a dag-pb root
    for size, cid in zip(SIZES, ours, strict=True):
        assert cid.startswith("bafk" if size <= CHUNK_SIZE else "bafy"), (size, cid)
    for path in paths:
        path.unlink()


@pytest.mark.parametrize(
    ("chunk_size", "max_links", "size"),
    [
        (1000, 3, 100_000),  # 100 leaves in fan-out 3: five levels, ragged right edge
        (1000, 3, 27_000),  # exactly 3**3 leaves: a full three-level tree
        (1000, 3, 27_001),  # one leaf more: a four-level tree with single-child nodes
        (64, 2, 64 * 9),  # fan-out 2, nine leaves
        (4096, 174, 4096 * (174 * 2 + 1)),  # 349 leaves: root with three children
    ],
)
def test_deep_balanced_trees_match_the_npm_importer(
    chunk_size: int, max_links: int, size: int, tmp_path: Path, cid_oracle: CidOracle
) -> None:
    # Small chunks and fan-out reach the tree depths a 7 GiB file would, in milliseconds.
    data = _random_bytes(size, size)
    path = tmp_path / "deep.bin"
    path.write_bytes(data)
    ours = str(import_bytes(data, chunk_size=chunk_size, max_links=max_links))
    assert cid_oracle([path], chunk_size=chunk_size, max_links=max_links) == [ours]


class _TricklingStream(io.RawIOBase):
    """A stream that returns at most a few bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = memoryview(data)
        self._position = 0
        self._random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._random.randint(1, 70_000), len(self._data) - self._position)
        buffer[:count] = self._data[self._position : self._position + count]
        self._position += count
        return count


def test_short_reads_do_not_move_chunk_boundaries() -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    stream = _TricklingStream(data, seed=7)
    assert str(import_stream(stream)) == cid_of(data)  # type: ignore[arg-type]


def test_importer_rejects_misuse() -> None:
    from ledger.store.unixfs import FileImporter

    importer = FileImporter()
    with pytest.raises(ValueError, match="exceeds 262144"):
        importer.add_chunk(bytes(CHUNK_SIZE + 1))
    importer.add_chunk(b"short")
    with pytest.raises(ValueError, match="only the last chunk may be shorter"):
        importer.add_chunk(b"more")
    assert importer.size == 5
    importer.finish()
    with pytest.raises(RuntimeError, match="finish called twice"):
        importer.finish()
