"""The local blockstore: round trips, verification on every read, pins, CAR export/import."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.settings import Settings
from ledger.store import (
    CHUNK_SIZE,
    BlockstoreIOError,
    CarFormatError,
    ContentIntegrityError,
    ContentNotFoundError,
    ContentStore,
    InvalidCIDError,
    KuboStore,
    LocalBlockstore,
    cid_of,
    open_store,
    put_path,
)
from ledger.store.car import encode_header, read_car
from ledger.store.cid import CID, encode_varint
from ledger.store.errors import UnixFSFormatError

Snapshot = Callable[[Path], dict[str, bytes]]


def _block_files(store: LocalBlockstore) -> list[Path]:
    return sorted(path for path in store.directory.glob("*/*.data"))


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 3])
def test_put_get_round_trip(local_store: LocalBlockstore, size: int) -> None:
    data = os.urandom(size)
    cid = local_store.put(data)
    assert cid == cid_of(data)
    assert local_store.has(cid)
    assert local_store.get(cid) == data
    # one file per distinct block: leaves plus (for more than one chunk) the root node
    leaves = max(1, -(-size // CHUNK_SIZE))
    assert len(_block_files(local_store)) == (leaves if leaves == 1 else leaves + 1)
    # no temporary files are left behind
    assert list((local_store.directory / ".tmp").iterdir()) == []


def test_identical_blocks_are_stored_once(local_store: LocalBlockstore) -> None:
    data = b"\x00" * (4 * CHUNK_SIZE)
    cid = local_store.put(data)
    assert local_store.put(data) == cid
    assert len(_block_files(local_store)) == 2  # one zero leaf, one root
    assert local_store.get(cid) == data


def test_put_file_streams_and_matches_put(local_store: LocalBlockstore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 99)
    path = tmp_path / "dataset.csv"
    path.write_bytes(data)
    assert put_path(local_store, path) == cid_of(data)
    assert local_store.get(cid_of(data)) == data


def test_tampered_leaf_raises_and_returns_nothing(local_store: LocalBlockstore, snapshot: Snapshot) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    cid = local_store.put(data)
    leaf = CID(0x55, hashlib.sha256(data[CHUNK_SIZE : 2 * CHUNK_SIZE]).digest())
    path = local_store.block_path(leaf)
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(damaged))
    before = snapshot(local_store.directory)
    result: bytes | None = None
    with pytest.raises(ContentIntegrityError) as caught:
        result = local_store.get(cid)
    assert result is None
    message = str(caught.value)
    assert str(leaf) in message and "damaged" in message and "no data was returned" in message
    assert snapshot(local_store.directory) == before  # a failed read changes nothing


def test_swapped_block_file_is_detected(local_store: LocalBlockstore) -> None:
    # Same length, valid data of another CID under this CID's name.
    first = local_store.put(b"a" * 100)
    second = local_store.put(b"b" * 100)
    local_store.block_path(first).write_bytes(local_store.block_path(second).read_bytes())
    with pytest.raises(ContentIntegrityError, match=first):
        local_store.get(first)
    assert local_store.get(second) == b"b" * 100


def test_missing_block_is_not_found(local_store: LocalBlockstore) -> None:
    data = os.urandom(2 * CHUNK_SIZE)
    cid = local_store.put(data)
    leaf = CID(0x55, hashlib.sha256(data[:CHUNK_SIZE]).digest())
    local_store.block_path(leaf).unlink()
    assert not local_store.has(cid)
    with pytest.raises(ContentNotFoundError, match=f"cannot read {cid}: no block {leaf}"):
        local_store.get(cid)
    with pytest.raises(ContentNotFoundError, match="not all in"):
        local_store.pin(cid)
    assert local_store.pins() == []


def test_unknown_and_invalid_cids(local_store: LocalBlockstore) -> None:
    absent = cid_of(b"never stored")
    assert not local_store.has(absent)
    with pytest.raises(ContentNotFoundError, match=absent):
        local_store.get(absent)
    with pytest.raises(InvalidCIDError, match="'not-a-cid'"):
        local_store.get("not-a-cid")
    assert not local_store.directory.exists()  # nothing was created by reads


def test_pin_records_the_root(local_store: LocalBlockstore) -> None:
    cid = local_store.put(b"model bytes")
    assert local_store.pins() == []
    local_store.pin(cid)
    local_store.pin(cid)
    assert local_store.pins() == [cid]


def test_car_export_import_into_a_fresh_store(local_store: LocalBlockstore, tmp_path: Path) -> None:
    model = os.urandom(3 * CHUNK_SIZE + 17)
    manifest = b'{"round": 1}'
    model_cid, manifest_cid = local_store.put(model), local_store.put(manifest)
    out = io.BytesIO()
    local_store.export_car([model_cid, manifest_cid], out)

    fresh = LocalBlockstore(tmp_path / "fresh")
    roots = fresh.import_car(io.BytesIO(out.getvalue()))
    assert roots == [model_cid, manifest_cid]
    assert fresh.get(model_cid) == model
    assert fresh.get(manifest_cid) == manifest
    assert fresh.pins() == sorted([model_cid, manifest_cid])
    # each block is written once even when roots share it
    shared = io.BytesIO()
    local_store.export_car([model_cid, model_cid], shared)
    _, sections = read_car(io.BytesIO(shared.getvalue()))
    cids = [cid for cid, _ in sections]
    assert len(cids) == len(set(cids)) == 5


def test_car_with_a_tampered_block_changes_nothing(
    local_store: LocalBlockstore, tmp_path: Path, snapshot: Snapshot
) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 1)
    cid = local_store.put(data)
    out = io.BytesIO()
    local_store.export_car([cid], out)
    car = bytearray(out.getvalue())
    car[-10] ^= 0xFF  # inside the last block
    fresh = LocalBlockstore(tmp_path / "fresh")
    fresh.put(b"already here")
    before = snapshot(fresh.directory)
    with pytest.raises(ContentIntegrityError, match="does not hash to its CID"):
        fresh.import_car(io.BytesIO(bytes(car)))
    assert snapshot(fresh.directory) == before
    assert not fresh.has(cid)


def test_car_missing_a_block_of_its_root_changes_nothing(
    local_store: LocalBlockstore, tmp_path: Path, snapshot: Snapshot
) -> None:
    data = os.urandom(2 * CHUNK_SIZE)
    cid = local_store.put(data)
    root_block = local_store.get_block(cid)
    header = encode_header([CID.parse(cid)])
    section = CID.parse(cid).binary + root_block
    car = encode_varint(len(header)) + header + encode_varint(len(section)) + section
    fresh = LocalBlockstore(tmp_path / "fresh")
    before = snapshot(fresh.directory)
    with pytest.raises(ContentNotFoundError, match=f"CAR root {cid} is incomplete"):
        fresh.import_car(io.BytesIO(car))
    assert snapshot(fresh.directory) == before


@pytest.mark.parametrize(
    ("car", "fragment"),
    [
        (b"", "empty CAR stream"),
        (b"\x05\xa1", "truncated"),
        (encode_varint(3) + b"\xa0\xa0\xa0", "trailing bytes"),
        (encode_varint(1) + b"\xa0", "version None is not supported"),
        (b"\xff" * 12, "longer than 9 bytes"),
    ],
)
def test_malformed_car_streams(car: bytes, fragment: str, local_store: LocalBlockstore) -> None:
    with pytest.raises(CarFormatError, match=fragment):
        local_store.import_car(io.BytesIO(car))
    assert not any(local_store.directory.glob("*/*.data"))


def test_truncated_car_section(local_store: LocalBlockstore, tmp_path: Path) -> None:
    cid = local_store.put(b"x" * 1000)
    out = io.BytesIO()
    local_store.export_car([cid], out)
    fresh = LocalBlockstore(tmp_path / "fresh")
    with pytest.raises(CarFormatError, match="truncated"):
        fresh.import_car(io.BytesIO(out.getvalue()[:-1]))
    assert not fresh.has(cid)


def test_export_of_missing_content_writes_nothing(local_store: LocalBlockstore) -> None:
    out = io.BytesIO()
    absent = cid_of(b"absent")
    with pytest.raises(ContentNotFoundError, match=f"cannot export {absent}"):
        local_store.export_car([absent], out)
    assert out.getvalue() == b""


def test_dag_pb_block_that_is_not_a_file(local_store: LocalBlockstore) -> None:
    # A UnixFS directory node with no links: valid dag-pb, not a file.
    node = b"\x0a\x02\x08\x01"
    cid = CID(0x70, hashlib.sha256(node).digest())
    local_store.put_block(cid, node)
    with pytest.raises(UnixFSFormatError, match="is a UnixFS directory, not a file"):
        local_store.get(str(cid))


def test_open_store_follows_settings(tmp_path: Path) -> None:
    local = open_store(Settings(home=tmp_path))
    assert isinstance(local, LocalBlockstore)
    assert local.directory == tmp_path / "blocks"
    assert isinstance(local, ContentStore)
    kubo = open_store(Settings(home=tmp_path, store="kubo", ipfs_api_url="http://127.0.0.1:9/"))
    assert isinstance(kubo, KuboStore)
    assert kubo.api_url == "http://127.0.0.1:9"
    assert isinstance(kubo, ContentStore)


def test_unusable_store_directory_is_a_store_error(tmp_path: Path) -> None:
    # A path that is a file, not a directory (root ignores permission bits, so this is
    # the portable way to make writes fail).
    occupied = tmp_path / "occupied"
    occupied.write_bytes(b"not a directory")
    store = LocalBlockstore(occupied)
    with pytest.raises(BlockstoreIOError, match=f"cannot write to the local store at {occupied}") as caught:
        store.put(b"model")
    assert isinstance(caught.value, OSError)
    assert occupied.read_bytes() == b"not a directory"
    assert not store.has(cid_of(b"model"))


def test_store_whose_directories_were_removed_writes_again(tmp_path: Path) -> None:
    """The store remembers the directories it made; one removed behind its back is made again."""
    store = LocalBlockstore(tmp_path / "blocks")
    first = store.put(b"first model")
    store.pin(first)
    shutil.rmtree(tmp_path / "blocks")
    second = store.put(b"second model")
    store.pin(second)
    assert store.get(second) == b"second model"
    assert store.pins() == [second]
    assert not store.has(first)
    assert sorted(p.name for p in (tmp_path / "blocks" / ".tmp").iterdir()) == []
