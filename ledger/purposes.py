"""The purpose vocabulary: what a grant allows a dataset to be used for.

A purpose is `keccak256(name)` on chain (`bytes32`). The names follow the AI-use terms of
ERC-7517 and the C2PA/CAWG training-and-data-mining assertion.
"""

from __future__ import annotations

import difflib

from eth_utils.crypto import keccak

from ledger.errors import UnknownPurposeError

PURPOSE_NAMES: tuple[str, ...] = ("ai-training", "ai-inference", "data-mining", "analytics")

# name -> keccak256(name), the bytes32 the contracts store.
PURPOSES: dict[str, bytes] = {name: keccak(text=name) for name in PURPOSE_NAMES}

_BY_ID: dict[bytes, str] = {value: name for name, value in PURPOSES.items()}


def purpose_id(name_or_hex: str | bytes) -> bytes:
    """The 32-byte purpose id of a purpose name (`ai-training`) or of a 0x-hex / raw 32-byte id.

    Raises `UnknownPurposeError` naming the closest known purpose when the name is not in the
    vocabulary. A 32-byte id outside the vocabulary is accepted as given: contracts treat any
    non-zero bytes32 as a purpose, and other deployments may define their own.
    """
    if isinstance(name_or_hex, bytes | bytearray):
        if len(name_or_hex) != 32:
            raise UnknownPurposeError(f"a purpose id is 32 bytes, got {len(name_or_hex)} bytes")
        return bytes(name_or_hex)
    text = name_or_hex.strip()
    if text.lower() in PURPOSES:
        return PURPOSES[text.lower()]
    if text.startswith(("0x", "0X")):
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError:
            raw = b""
        if len(raw) == 32:
            return raw
        raise UnknownPurposeError(
            f"purpose id {text!r} is not 32 bytes of hex (0x followed by 64 hex digits)"
        )
    closest = difflib.get_close_matches(text.lower(), PURPOSE_NAMES, n=1, cutoff=0.4)
    hint = f" (did you mean {closest[0]!r}?)" if closest else ""
    raise UnknownPurposeError(f"unknown purpose {text!r}{hint}; known purposes: {', '.join(PURPOSE_NAMES)}")


def purpose_name(purpose: bytes) -> str:
    """The vocabulary name of a purpose id; raises `UnknownPurposeError` if it has none."""
    try:
        return _BY_ID[bytes(purpose)]
    except KeyError:
        raise UnknownPurposeError(
            f"purpose id 0x{bytes(purpose).hex()} is not one of {', '.join(PURPOSE_NAMES)}"
        ) from None


def describe_purpose(purpose: bytes) -> str:
    """The name of a purpose id when known, else its hex: for messages."""
    return _BY_ID.get(bytes(purpose), "0x" + bytes(purpose).hex())
