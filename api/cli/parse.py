"""Parsing what people type: dataset ids, addresses, times. Errors say what would be valid."""

from __future__ import annotations

import datetime as dt
import re

from ledger.errors import InvalidArgumentError

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def dataset_id(text: str) -> int:
    """A dataset id from a decimal id, a 0x-hex id (the content root) or the dataset's CID."""
    from ledger.store import content_root

    value = text.strip()
    try:
        if value.startswith(("0x", "0X")):
            number = int(value, 16)
        elif value.isdigit():
            number = int(value)
        else:
            return int.from_bytes(content_root(value), "big")
    except ValueError:
        raise InvalidArgumentError(
            f"{text!r} is not a dataset id: give the decimal id, the 0x-hex content root or the dataset's CID"
        ) from None
    if not 0 < number < 2**256:
        raise InvalidArgumentError(f"dataset id {text!r} is out of range (1 .. 2**256-1)")
    return number


def address(text: str, what: str = "address") -> str:
    """A checksummed address; a mixed-case address with a wrong checksum is refused."""
    from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

    value = text.strip()
    if not value.startswith("0x") or not is_hex_address(value):
        raise InvalidArgumentError(
            f"{what} {text!r} is not a 20-byte hex address (0x followed by 40 hex digits)"
        )
    if value != value.lower() and value != "0x" + value[2:].upper() and not is_checksum_address(value):
        raise InvalidArgumentError(
            f"{what} {text!r} has a wrong EIP-55 checksum (did you mean {to_checksum_address(value)}?)"
        )
    return to_checksum_address(value)


def moment(text: str, now: int) -> int:
    """A unix time from `now`, a duration from now (`30m`, `12h`, `7d`), an ISO date or a unix time."""
    value = text.strip().lower()
    if value == "now":
        return now
    match = _DURATION.match(value)
    if match:
        return now + int(match.group(1)) * _SECONDS[match.group(2)]
    if value.isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"{text!r} is not a time: use 'now', a duration like 30m, 12h or 7d, an ISO date "
            "(2026-12-31T23:59:59+00:00) or a unix timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def iso(timestamp: int) -> str:
    """A unix time as an ISO-8601 UTC string."""
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat().replace("+00:00", "Z")
