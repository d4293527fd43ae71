"""LocalBlockstore.get_buffer: the bytes of `get`, in one preallocated buffer, with `get`'s errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.store import CHUNK_SIZE, ContentIntegrityError, ContentNotFoundError, LocalBlockstore
from ledger.store.cid import CID
from ledger.store.errors import UnixFSFormatError
from ledger.store.unixfs import encode_file_node

Snapshot = Callable[[Path], dict[str, bytes]]


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 3])
def test_get_buffer_holds_the_bytes_of_get(local_store: LocalBlockstore, size: int) -> None:
    data = os.urandom(size)
    cid = local_store.put(data)
    buffer = local_store.get_buffer(cid)
    assert isinstance(buffer, bytearray)
    assert len(buffer) == size and buffer == data == local_store.get(cid)


def test_damaged_leaf_raises_and_changes_nothing(local_store: LocalBlockstore, snapshot: Snapshot) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    cid = local_store.put(data)
    leaf = CID(0x55, hashlib.sha256(data[2 * CHUNK_SIZE :]).digest())
    path = local_store.block_path(leaf)
    damaged = bytearray(path.read_bytes())
    damaged[7] ^= 0x80
    path.write_bytes(bytes(damaged))
    before = snapshot(local_store.directory)
    with pytest.raises(ContentIntegrityError, match=f"block {leaf} in .* is damaged.*no data was returned"):
        local_store.get_buffer(cid)
    assert snapshot(local_store.directory) == before


def test_missing_leaf_is_not_found_with_the_root_named(local_store: LocalBlockstore) -> None:
    data = os.urandom(2 * CHUNK_SIZE)
    cid = local_store.put(data)
    leaf = CID(0x55, hashlib.sha256(data[CHUNK_SIZE:]).digest())
    local_store.block_path(leaf).unlink()
    with pytest.raises(ContentNotFoundError, match=f"cannot read {cid}: no block {leaf}"):
        local_store.get_buffer(cid)
    absent = CID(0x55, hashlib.sha256(b"never stored").digest())
    with pytest.raises(ContentNotFoundError, match=f"cannot read {absent}: no block {absent}"):
        local_store.get_buffer(str(absent))


@pytest.mark.parametrize("claimed", [10, 2 * CHUNK_SIZE])
def test_root_whose_size_disagrees_with_its_leaves_is_refused_like_get(
    local_store: LocalBlockstore, claimed: int
) -> None:
    leaf_data = os.urandom(CHUNK_SIZE)
    leaf = CID(0x55, hashlib.sha256(leaf_data).digest())
    local_store.put_block(leaf, leaf_data)
    node = encode_file_node([(leaf, CHUNK_SIZE, claimed)])
    root = CID(0x70, hashlib.sha256(node).digest())
    local_store.put_block(root, node)
    with pytest.raises(UnixFSFormatError):
        local_store.get(str(root))
    with pytest.raises(UnixFSFormatError, match=f"block {root}"):
        local_store.get_buffer(str(root))


def test_directory_node_is_not_a_file(local_store: LocalBlockstore) -> None:
    node = b"\x0a\x02\x08\x01"
    cid = CID(0x70, hashlib.sha256(node).digest())
    local_store.put_block(cid, node)
    with pytest.raises(UnixFSFormatError, match="is a UnixFS directory, not a file"):
        local_store.get_buffer(str(cid))
