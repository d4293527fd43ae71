"""Content-store errors beyond the shared tree in `ledger.errors`.

The shared classes (`InvalidCIDError`, `ContentNotFoundError`, `ContentIntegrityError`,
`UnreachableError`) are re-exported here so store code and its callers import from one
place; the subclasses below only narrow them.
"""

from __future__ import annotations

from ledger.errors import (
    ContentIntegrityError,
    ContentNotFoundError,
    ContentStoreError,
    InvalidCIDError,
    UnreachableError,
)

__all__ = [
    "BlockstoreIOError",
    "CIDMismatchError",
    "CarFormatError",
    "ContentIntegrityError",
    "ContentNotFoundError",
    "ContentStoreError",
    "InvalidCIDError",
    "IpfsNodeError",
    "UnixFSFormatError",
    "UnreachableError",
]


class CarFormatError(ContentStoreError, ValueError):
    """A CAR stream is truncated or malformed (bad varint, header or section)."""


class UnixFSFormatError(ContentIntegrityError, ValueError):
    """A block hashes to its CID but is not a UnixFS file node this store can read."""


class BlockstoreIOError(ContentStoreError, OSError):
    """The local blockstore's directory cannot be read or written (permissions, full disk)."""


class CIDMismatchError(ContentIntegrityError):
    """An IPFS node reported a different CID than the one computed locally for the same bytes."""


class IpfsNodeError(ContentStoreError):
    """An IPFS node answered an RPC call with an error; the message carries the node's text."""
