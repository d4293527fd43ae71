"""CARv1 (content-addressed archive) writing and verified reading.

A CARv1 stream is a varint-framed DAG-CBOR header `{"roots": [CID...], "version": 1}`
followed by varint-framed sections `CID bytes || block bytes`. Any IPFS node imports
it (`ipfs dag import`). Reading verifies every block against its CID before yielding
it, so a CAR can never smuggle bytes under a wrong name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from ledger.store.cid import CID, decode_varint, encode_varint
from ledger.store.errors import CarFormatError, ContentIntegrityError, InvalidCIDError

# Kubo refuses blocks over 2 MiB on the wire; a little slack, then refuse instead of
# allocating whatever length a corrupt varint claims.
MAX_SECTION_BYTES: Final = 4 * 1024 * 1024
MAX_HEADER_BYTES: Final = 1024 * 1024
_CID_TAG: Final = 42


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes((major << 5 | extra,)) + value.to_bytes(width, "big")
    raise ValueError(f"CBOR length too large: {value}")


def encode_header(roots: list[CID]) -> bytes:
    """DAG-CBOR header bytes (map keys in DAG-CBOR canonical order: `roots`, `version`)."""
    parts = [_cbor_head(5, 2), _cbor_head(3, 5), b"roots", _cbor_head(4, len(roots))]
    for root in roots:
        # A CID in DAG-CBOR is tag 42 over a byte string: 0x00 (identity multibase) + CID
        link = b"\x00" + root.binary
        parts += [_cbor_head(6, _CID_TAG), _cbor_head(2, len(link)), link]
    parts += [_cbor_head(3, 7), b"version", _cbor_head(0, 1)]
    return b"".join(parts)


def write_car(roots: list[CID], blocks: Iterable[tuple[CID, bytes]], out: BinaryIO) -> int:
    """Write a CARv1 with `roots` and `blocks` (in the given order); return bytes written."""
    header = encode_header(roots)
    written = out.write(encode_varint(len(header)) + header)
    for cid, block in blocks:
        binary = cid.binary
        written += out.write(encode_varint(len(binary) + len(block)) + binary)
        written += out.write(block)
    return written


class _CborReader:
    """Just enough DAG-CBOR to read a CAR header: maps, arrays, strings, ints, tag 42."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def _take(self, count: int) -> bytes:
        end = self._offset + count
        if end > len(self._data):
            raise CarFormatError("CAR header is truncated")
        piece = self._data[self._offset : end]
        self._offset = end
        return piece

    def _head(self) -> tuple[int, int]:
        initial = self._take(1)[0]
        major, extra = initial >> 5, initial & 0x1F
        if extra < 24:
            return major, extra
        if extra in (24, 25, 26, 27):
            return major, int.from_bytes(self._take(1 << (extra - 24)), "big")
        raise CarFormatError(f"CAR header uses unsupported CBOR item 0x{initial:02x}")

    def item(self, depth: int = 0) -> object:
        if depth > 8:
            raise CarFormatError("CAR header nests too deeply")
        major, value = self._head()
        if major == 0:
            return value
        if major == 2:
            return self._take(value)
        if major == 3:
            try:
                return self._take(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CarFormatError("CAR header has a string that is not UTF-8") from exc
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            entries: dict[object, object] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise CarFormatError("CAR header map has a non-string key")
                entries[key] = self.item(depth + 1)
            return entries
        if major == 6 and value == _CID_TAG:
            link = self.item(depth + 1)
            if not isinstance(link, bytes) or not link.startswith(b"\x00"):
                raise CarFormatError("CAR header has a malformed CID link")
            try:
                return CID.from_binary(link[1:])
            except InvalidCIDError as exc:
                raise CarFormatError(f"CAR header root is not a supported CID: {exc}") from exc
        raise CarFormatError(f"CAR header uses unsupported CBOR major type {major}")

    def at_end(self) -> bool:
        return self._offset == len(self._data)


def decode_header(data: bytes) -> list[CID]:
    """The roots of a CARv1 header; raise `CarFormatError` unless it is version 1."""
    reader = _CborReader(data)
    header = reader.item()
    if not reader.at_end():
        raise CarFormatError("CAR header has trailing bytes")
    if not isinstance(header, dict):
        raise CarFormatError("CAR header is not a map")
    if header.get("version") != 1:
        raise CarFormatError(f"CAR version {header.get('version')!r} is not supported; expected 1")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, CID) for root in roots):
        raise CarFormatError("CAR header `roots` must be a list of CIDs")
    return [root for root in roots if isinstance(root, CID)]


def _read_varint(src: BinaryIO) -> int | None:
    """Read a varint from a stream; None at a clean end of stream."""
    raw = bytearray()
    while True:
        byte = src.read(1)
        if not byte:
            if raw:
                raise CarFormatError("CAR stream ends inside a length prefix")
            return None
        raw += byte
        if byte[0] < 0x80:
            return decode_varint(bytes(raw))[0]
        if len(raw) >= 9:
            raise CarFormatError("CAR length prefix is longer than 9 bytes")


def _read_exact(src: BinaryIO, count: int, what: str) -> bytes:
    data = src.read(count)
    if len(data) != count:
        raise CarFormatError(f"CAR stream is truncated: {what} needs {count} bytes, got {len(data)}")
    return data


def read_car(src: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Read the header now; return the roots and an iterator of verified (cid, block) pairs.

    The iterator raises `ContentIntegrityError` for a block that does not hash to its
    CID and `CarFormatError` for a malformed stream.
    """
    length = _read_varint(src)
    if length is None:
        raise CarFormatError("empty CAR stream: no header")
    if not 0 < length <= MAX_HEADER_BYTES:
        raise CarFormatError(f"CAR header length {length} is out of range (1..{MAX_HEADER_BYTES})")
    roots = decode_header(_read_exact(src, length, "the header"))
    return roots, _sections(src)


def _sections(src: BinaryIO) -> Iterator[tuple[CID, bytes]]:
    index = 0
    while True:
        length = _read_varint(src)
        if length is None:
            return
        if not 0 < length <= MAX_SECTION_BYTES:
            raise CarFormatError(
                f"CAR section {index} length {length} is out of range (1..{MAX_SECTION_BYTES})"
            )
        section = _read_exact(src, length, f"section {index}")
        try:
            cid, offset = CID.read_prefix(section)
        except InvalidCIDError as exc:
            raise CarFormatError(f"CAR section {index} does not start with a supported CID: {exc}") from exc
        block = section[offset:]
        digest = hashlib.sha256(block).digest()
        if digest != cid.digest:
            raise ContentIntegrityError(
                f"CAR block {cid} does not hash to its CID (sha2-256 of its bytes is {digest.hex()})"
            )
        yield cid, block
        index += 1
