"""CIDv1 values: base32 text form, binary form, and the sha2-256 digest they carry.

Only what the ledger produces and reads is accepted: CID version 1, multibase `b`
(lowercase base32, no padding), codec raw (0x55) or dag-pb (0x70), multihash sha2-256
with a 32-byte digest. Anything else raises `InvalidCIDError` naming the value and
saying what would be valid, so a user who pasted a CIDv0 or a base58 CID knows how to
convert it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from ledger.store.errors import InvalidCIDError

RAW: Final = 0x55
DAG_PB: Final = 0x70
SHA2_256: Final = 0x12
SHA2_256_LENGTH: Final = 32

CODEC_NAMES: Final[dict[int, str]] = {RAW: "raw", DAG_PB: "dag-pb"}

_BASE32_TEXT = re.compile(r"b[a-z2-7]+")
# version 1 + codec + sha2-256 + length + digest: both codecs fit one varint byte
_CID_BINARY_LENGTH: Final = 4 + SHA2_256_LENGTH


def _show(value: object) -> str:
    """A short printable form of an offending value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats, protobuf and CAR framing."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buffer: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode an unsigned varint at `offset`; return (value, offset after it).

    Raises `ValueError` on a truncated or over-long (more than 9 bytes) varint.
    """
    value = 0
    shift = 0
    position = offset
    end = len(buffer)
    while True:
        if position >= end:
            raise ValueError(f"truncated varint at offset {offset}")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 63:
            raise ValueError(f"varint longer than 9 bytes at offset {offset}")


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv1 with a sha2-256 multihash; `str(cid)` is its canonical base32 form."""

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.codec not in CODEC_NAMES:
            raise InvalidCIDError(
                f"unsupported CID codec 0x{self.codec:x}; valid: 0x55 (raw) or 0x70 (dag-pb)"
            )
        if len(self.digest) != SHA2_256_LENGTH:
            raise InvalidCIDError(
                f"sha2-256 digest must be 32 bytes, got {len(self.digest)}: {_show(self.digest)}"
            )

    @property
    def codec_name(self) -> str:
        """`raw` or `dag-pb`."""
        return CODEC_NAMES[self.codec]

    @property
    def binary(self) -> bytes:
        """The binary CID: version, codec, multihash code, digest length, digest."""
        return bytes((1, self.codec, SHA2_256, SHA2_256_LENGTH)) + self.digest

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.binary).decode("ascii").rstrip("=").lower()

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse the base32 text form; raise `InvalidCIDError` with the reason otherwise."""
        if not isinstance(text, str):
            raise InvalidCIDError(f"a CID must be a string, got {type(text).__name__}: {_show(text)}")
        candidate = text.strip()
        if not candidate:
            raise InvalidCIDError("empty CID; expected a CIDv1 in base32 such as 'bafkrei...'")
        if candidate.startswith("Qm") and len(candidate) == 46:
            raise InvalidCIDError(
                f"{_show(text)} is a CIDv0; this ledger uses CIDv1 in base32 "
                "(convert with `ipfs cid format -v 1 -b base32 CID`)"
            )
        if candidate[0] in "zZ":
            raise InvalidCIDError(
                f"{_show(text)} is base58btc; this ledger uses CIDv1 in base32 "
                "(convert with `ipfs cid base32 CID`, or pass cid-base=base32 to the node)"
            )
        if candidate[0] == "B":
            raise InvalidCIDError(f"{_show(text)} is upper-case base32; write the CID in lower case ('b...')")
        if not _BASE32_TEXT.fullmatch(candidate):
            raise InvalidCIDError(
                f"{_show(text)} is not a CIDv1 in base32: expected 'b' followed by letters a-z and digits 2-7"
            )
        payload = candidate[1:].upper()
        try:
            binary = base64.b32decode(payload + "=" * (-len(payload) % 8))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCIDError(f"{_show(text)} is not valid base32: {exc}") from exc
        cid = cls._from_binary(binary, text)
        # Trailing pad bits must be zero: a non-canonical spelling would give two names
        # for one block.
        if str(cid) != candidate:
            raise InvalidCIDError(f"{_show(text)} is not the canonical base32 form of {cid}")
        return cid

    @classmethod
    def from_binary(cls, binary: bytes) -> CID:
        """Parse a binary CID (exactly the CID, nothing after it)."""
        return cls._from_binary(binary, binary)

    @classmethod
    def read_prefix(cls, buffer: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Parse a binary CID at the start of `buffer[offset:]`; return it and the offset after it.

        Used by CAR sections and dag-pb links, where the CID is followed by other bytes.
        """
        end = offset + _CID_BINARY_LENGTH
        if len(buffer) < end:
            raise InvalidCIDError(
                f"truncated binary CID: {len(buffer) - offset} bytes, "
                f"a sha2-256 CIDv1 has {_CID_BINARY_LENGTH}"
            )
        return cls._from_binary(bytes(buffer[offset:end]), bytes(buffer[offset:end])), end

    @classmethod
    def _from_binary(cls, binary: bytes, shown: object) -> CID:
        if len(binary) >= 2 and binary[0] == SHA2_256 and binary[1] == SHA2_256_LENGTH:
            raise InvalidCIDError(f"{_show(shown)} is a CIDv0; this ledger uses CIDv1")
        if len(binary) < 4:
            raise InvalidCIDError(f"{_show(shown)} is too short to be a CID ({len(binary)} bytes)")
        version, codec, hash_code, length = binary[0], binary[1], binary[2], binary[3]
        if version != 1:
            raise InvalidCIDError(f"{_show(shown)} has CID version {version}; expected 1")
        if codec not in CODEC_NAMES:
            raise InvalidCIDError(f"{_show(shown)} has codec 0x{codec:x}; valid: 0x55 (raw) or 0x70 (dag-pb)")
        if hash_code != SHA2_256 or length != SHA2_256_LENGTH:
            raise InvalidCIDError(
                f"{_show(shown)} uses multihash 0x{hash_code:x} of {length} bytes; "
                "only sha2-256 (0x12, 32 bytes) is supported"
            )
        if len(binary) != _CID_BINARY_LENGTH:
            raise InvalidCIDError(
                f"{_show(shown)} has {len(binary)} bytes; a sha2-256 CIDv1 has {_CID_BINARY_LENGTH}"
            )
        return cls(codec, bytes(binary[4:]))


def parse_cid(value: str | CID) -> CID:
    """Accept a `CID` or its text form; raise `InvalidCIDError` for anything else."""
    return value if isinstance(value, CID) else CID.parse(value)


def content_root(cid: str | CID) -> bytes:
    """The 32-byte sha2-256 digest inside a CIDv1: the dataset's on-chain content root."""
    return parse_cid(cid).digest
