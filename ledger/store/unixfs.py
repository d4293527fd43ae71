"""A UnixFS file importer and reader byte-identical to Kubo's `ipfs add --cid-version=1`.

Kubo's defaults for CIDv1 are: fixed-size chunks of 262144 bytes, raw leaves (each
chunk is a `raw` block), a balanced DAG of dag-pb nodes with at most 174 links each,
sha2-256 everywhere. A file of at most one chunk (including the empty file) is a
single raw block. The dag-pb and UnixFS protobufs are small enough to write by hand,
which keeps the field order and presence exactly as Kubo writes them:

    PBNode  { repeated PBLink Links = 2; bytes Data = 1 }   (Links serialised first)
    PBLink  { bytes Hash = 1; string Name = 2 (always present, empty); uint64 Tsize = 3 }
    Data    { Type = 1 (File = 2); filesize = 3; repeated blocksizes = 4 (not packed) }

The importer is streaming: it keeps one pending list of links per tree level (at most
174 per level), so hashing a file needs memory for one chunk plus a few nodes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from ledger.store.cid import CID, DAG_PB, RAW, decode_varint, encode_varint
from ledger.store.errors import UnixFSFormatError

CHUNK_SIZE: Final = 262144
MAX_LINKS: Final = 174

# UnixFS Data.Type values (unixfs.proto)
UNIXFS_RAW: Final = 0
UNIXFS_DIRECTORY: Final = 1
UNIXFS_FILE: Final = 2
_UNIXFS_TYPE_NAMES: Final = {
    0: "raw",
    1: "directory",
    2: "file",
    3: "metadata",
    4: "symlink",
    5: "HAMT shard",
}

# A DAG deeper than this cannot come from any real file (174**16 chunks); refusing it
# bounds the reader's recursion on hostile input.
_MAX_DEPTH: Final = 16

BlockSink = Callable[[CID, memoryview], None]
"""Receives every block the importer creates. The view is valid only during the call."""

BlockLoader = Callable[[CID], bytes]
"""Returns the bytes of a block, already verified against its CID."""


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CID
    tsize: int  # cumulative serialized size of the linked sub-DAG (PBLink.Tsize)
    file_size: int  # file bytes under the link (UnixFS blocksizes entry)


def _field_bytes(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def encode_file_node(links: list[tuple[CID, int, int]]) -> bytes:
    """Serialise an internal UnixFS file node from (child cid, tsize, file size) triples."""
    parts: list[bytes] = []
    file_size = 0
    blocksizes = bytearray()
    for cid, tsize, size in links:
        # Hash = 1 (bytes), Name = 2 (empty string, present as Kubo writes it), Tsize = 3
        link = _field_bytes(0x0A, cid.binary) + b"\x12\x00\x18" + encode_varint(tsize)
        parts.append(_field_bytes(0x12, link))
        file_size += size
        blocksizes += b"\x20" + encode_varint(size)
    data = b"\x08\x02\x18" + encode_varint(file_size) + bytes(blocksizes)
    parts.append(_field_bytes(0x0A, data))
    return b"".join(parts)


class FileImporter:
    """Builds the Kubo-identical UnixFS DAG of a byte stream fed chunk by chunk.

    Feed exactly `CHUNK_SIZE`-byte chunks (the last may be shorter) with `add_chunk`,
    then call `finish` for the root CID. `sink`, when given, receives every block.
    `chunk_size` and `max_links` exist so tests can build deep trees from small inputs;
    anything but the defaults gives CIDs Kubo would not.
    """

    def __init__(
        self, sink: BlockSink | None = None, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
    ) -> None:
        if chunk_size < 1 or max_links < 2:
            raise ValueError(f"need chunk_size >= 1 and max_links >= 2, got {chunk_size} and {max_links}")
        self._sink = sink
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._levels: list[list[_Link]] = []
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    def add_chunk(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk as a raw leaf."""
        view = memoryview(chunk)
        if self._finished:
            raise RuntimeError("FileImporter.add_chunk after finish")
        if view.nbytes > self._chunk_size:
            raise ValueError(f"chunk of {view.nbytes} bytes exceeds {self._chunk_size}")
        if self._levels and self._levels[0] and self._levels[0][-1].file_size != self._chunk_size:
            raise ValueError("only the last chunk may be shorter than CHUNK_SIZE")
        cid = CID(RAW, hashlib.sha256(view).digest())
        if self._sink is not None:
            self._sink(cid, view)
        self._size += view.nbytes
        self._push(0, _Link(cid, view.nbytes, view.nbytes))

    def _push(self, level: int, link: _Link) -> None:
        # A level is closed only when one more entry arrives for it, so the final shape
        # matches Kubo's top-down balanced builder without knowing the size in advance.
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        if len(pending) == self._max_links:
            self._push(level + 1, self._build(pending))
            pending.clear()
        pending.append(link)

    def _build(self, links: list[_Link]) -> _Link:
        node = encode_file_node([(link.cid, link.tsize, link.file_size) for link in links])
        cid = CID(DAG_PB, hashlib.sha256(node).digest())
        if self._sink is not None:
            self._sink(cid, memoryview(node))
        return _Link(
            cid,
            len(node) + sum(link.tsize for link in links),
            sum(link.file_size for link in links),
        )

    def finish(self) -> CID:
        """Close every pending node and return the root CID."""
        if self._finished:
            raise RuntimeError("FileImporter.finish called twice")
        if not self._levels:
            # Kubo stores the empty file as one empty raw leaf.
            self.add_chunk(b"")
        self._finished = True
        levels = self._levels
        if len(levels) == 1 and len(levels[0]) == 1:
            return levels[0][0].cid
        level = 0
        while True:
            node = self._build(levels[level])
            levels[level].clear()
            if level == len(levels) - 1:
                return node.cid
            self._push(level + 1, node)
            level += 1


def import_bytes(
    data: bytes | bytearray | memoryview,
    sink: BlockSink | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> CID:
    """Root CID of `data` as Kubo's `ipfs add --cid-version=1` computes it (default layout)."""
    view = memoryview(data).cast("B")
    importer = FileImporter(sink, chunk_size=chunk_size, max_links=max_links)
    for start in range(0, view.nbytes, chunk_size):
        importer.add_chunk(view[start : start + chunk_size])
    return importer.finish()


def read_full(stream: BinaryIO, buffer: bytearray) -> int:
    """Fill `buffer` from `stream` unless EOF comes first; return the bytes read.

    Pipes and sockets return short reads; Kubo's chunker fills every chunk fully, so
    the chunk boundaries (and the CID) must not depend on how the OS delivers bytes.
    """
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


ProgressCallback = Callable[[int], None]
"""Called after each chunk with the number of bytes consumed so far."""


def import_stream(
    stream: BinaryIO, sink: BlockSink | None = None, on_progress: ProgressCallback | None = None
) -> CID:
    """Root CID of everything readable from `stream`, hashing one reused chunk buffer at a time."""
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    importer = FileImporter(sink)
    while True:
        count = read_full(stream, buffer)
        if count:
            importer.add_chunk(view[:count])
            if on_progress is not None:
                on_progress(importer.size)
        if count < CHUNK_SIZE:
            return importer.finish()


# --- reading -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb UnixFS node: its links, and the file bytes it holds itself."""

    links: tuple[CID, ...]
    data: bytes
    file_size: int | None
    blocksizes: tuple[int, ...]


def _fields(buffer: bytes, what: str) -> Iterator[tuple[int, int, int | bytes]]:
    """Iterate (field number, wire type, value) over a protobuf message."""
    offset = 0
    end = len(buffer)
    try:
        while offset < end:
            key, offset = decode_varint(buffer, offset)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, offset = decode_varint(buffer, offset)
                yield number, wire, value
            elif wire == 2:
                length, offset = decode_varint(buffer, offset)
                if offset + length > end:
                    raise ValueError(f"field {number} runs past the end")
                yield number, wire, buffer[offset : offset + length]
                offset += length
            else:
                raise ValueError(f"unsupported wire type {wire} for field {number}")
    except ValueError as exc:
        raise UnixFSFormatError(f"malformed {what} protobuf: {exc}") from exc


def _decode_pb_node(block: bytes, cid: CID) -> tuple[list[CID], bytes | None]:
    """Split a dag-pb block into its link CIDs and its Data field (None when absent)."""
    links: list[CID] = []
    data_field: bytes | None = None
    for number, wire, value in _fields(block, "dag-pb"):
        if number == 2 and isinstance(value, bytes):
            hashes = [v for n, _, v in _fields(value, "dag-pb link") if n == 1 and isinstance(v, bytes)]
            if len(hashes) != 1:
                raise UnixFSFormatError(f"block {cid}: a dag-pb link must carry exactly one Hash")
            links.append(CID.from_binary(hashes[0]))
        elif number == 1 and isinstance(value, bytes):
            data_field = value
        else:
            raise UnixFSFormatError(f"block {cid}: unexpected dag-pb field {number} (wire type {wire})")
    return links, data_field


def decode_file_node(block: bytes, cid: CID) -> FileNode:
    """Decode a dag-pb block holding a UnixFS file (or raw) node."""
    links, data_field = _decode_pb_node(block, cid)
    unixfs_type: int | None = None
    payload = b""
    file_size: int | None = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(data_field or b"", "UnixFS"):
        if number == 1 and isinstance(value, int):
            unixfs_type = value
        elif number == 2 and isinstance(value, bytes):
            payload = value
        elif number == 3 and isinstance(value, int):
            file_size = value
        elif number == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif number == 4 and isinstance(value, bytes):  # packed encoding, tolerated on read
            position = 0
            while position < len(value):
                size, position = decode_varint(value, position)
                blocksizes.append(size)
        elif number in (5, 6, 7, 8):  # hashType, fanout, mode, mtime: irrelevant for bytes
            continue
        else:
            raise UnixFSFormatError(f"block {cid}: unexpected UnixFS field {number} (wire type {wire})")
    if unixfs_type not in (UNIXFS_FILE, UNIXFS_RAW):
        kind = _UNIXFS_TYPE_NAMES.get(unixfs_type or -1, f"type {unixfs_type}")
        raise UnixFSFormatError(f"{cid} is a UnixFS {kind}, not a file")
    if blocksizes and len(blocksizes) != len(links):
        raise UnixFSFormatError(f"block {cid}: {len(links)} links but {len(blocksizes)} block sizes")
    return FileNode(tuple(links), payload, file_size, tuple(blocksizes))


def iter_file(cid: CID, load: BlockLoader, _depth: int = 0) -> Iterator[bytes]:
    """Yield the file bytes under `cid` in order, loading (verified) blocks with `load`."""
    block = load(cid)
    if cid.codec == RAW:
        yield block
        return
    if _depth > _MAX_DEPTH:
        raise UnixFSFormatError(f"DAG under {cid} is deeper than {_MAX_DEPTH} levels")
    node = decode_file_node(block, cid)
    produced = len(node.data)
    if node.data:
        yield node.data
    for index, child in enumerate(node.links):
        child_size = 0
        for piece in iter_file(child, load, _depth + 1):
            child_size += len(piece)
            yield piece
        if node.blocksizes and child_size != node.blocksizes[index]:
            raise UnixFSFormatError(
                f"block {cid}: child {child} holds {child_size} bytes, node says {node.blocksizes[index]}"
            )
        produced += child_size
    if node.file_size is not None and produced != node.file_size:
        raise UnixFSFormatError(f"block {cid}: holds {produced} bytes, node says {node.file_size}")


def iter_dag(cid: CID, load: BlockLoader, _depth: int = 0) -> Iterator[tuple[CID, bytes]]:
    """Yield every (cid, block) of the DAG under `cid`, depth-first, parents before children."""
    block = load(cid)
    yield cid, block
    if cid.codec == RAW:
        return
    if _depth > _MAX_DEPTH:
        raise UnixFSFormatError(f"DAG under {cid} is deeper than {_MAX_DEPTH} levels")
    for child in links_of(cid, block):
        yield from iter_dag(child, load, _depth + 1)


def links_of(cid: CID, block: bytes) -> tuple[CID, ...]:
    """The CIDs a block links to (none for a raw block); works for any dag-pb node."""
    if cid.codec == RAW:
        return ()
    return tuple(_decode_pb_node(block, cid)[0])


def cid_of(data: bytes | bytearray | memoryview) -> str:
    """The CIDv1 (base32) that `ipfs add --cid-version=1` gives these bytes."""
    return str(import_bytes(data))


def cid_of_file(path: str | os.PathLike[str], on_progress: ProgressCallback | None = None) -> str:
    """The CIDv1 (base32) of a file's contents, hashed in one streaming pass."""
    # Unbuffered: readinto then fills our chunk buffer straight from the kernel.
    with open(path, "rb", buffering=0) as stream:
        return str(import_stream(stream, on_progress=on_progress))
