"""Content-addressed storage for models, manifests and datasets (IPFS-compatible).

`ContentStore` is what the rest of the system codes against; `open_store(settings)`
returns the backend the settings choose: the embedded `LocalBlockstore` under the data
directory, or `KuboStore` talking to an IPFS node. Both return the CIDv1 that Kubo's
`ipfs add --cid-version=1` gives the same bytes, and both verify every read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import BinaryIO, Protocol, runtime_checkable

from ledger.settings import Settings
from ledger.store.cid import CID, content_root, parse_cid
from ledger.store.errors import (
    BlockstoreIOError,
    CarFormatError,
    CIDMismatchError,
    ContentIntegrityError,
    ContentNotFoundError,
    ContentStoreError,
    InvalidCIDError,
    IpfsNodeError,
    UnixFSFormatError,
    UnreachableError,
)
from ledger.store.kubo import KuboStore
from ledger.store.local import LocalBlockstore
from ledger.store.unixfs import CHUNK_SIZE, MAX_LINKS, ProgressCallback, cid_of, cid_of_file

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "MAX_LINKS",
    "BlockstoreIOError",
    "CIDMismatchError",
    "CarFormatError",
    "ContentIntegrityError",
    "ContentNotFoundError",
    "ContentStore",
    "ContentStoreError",
    "FileContentStore",
    "InvalidCIDError",
    "IpfsNodeError",
    "KuboStore",
    "LocalBlockstore",
    "ProgressCallback",
    "UnixFSFormatError",
    "UnreachableError",
    "cid_of",
    "cid_of_file",
    "content_root",
    "open_store",
    "parse_cid",
    "put_path",
]


@runtime_checkable
class ContentStore(Protocol):
    """Bytes in, CIDv1 out; reads are verified against the CID."""

    def put(self, data: bytes) -> str:
        """Store `data`; return its CIDv1 (base32, Kubo-identical)."""
        ...

    def get(self, cid: str) -> bytes:
        """The verified bytes of `cid`."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the store holds `cid`."""
        ...

    def pin(self, cid: str) -> None:
        """Keep `cid` from garbage collection."""
        ...

    def export_car(self, cids: Iterable[str], out: BinaryIO) -> None:
        """Write the DAGs of `cids` as one CARv1 to `out`."""
        ...

    def import_car(self, src: BinaryIO) -> list[str]:
        """Import a CARv1 (every block verified); return its root CIDs."""
        ...


@runtime_checkable
class FileContentStore(ContentStore, Protocol):
    """A store that can also ingest a file without reading it into memory."""

    def put_file(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None = None) -> str:
        """Store a file's contents; return its CIDv1. `on_progress(bytes_done)` follows it."""
        ...


def put_path(
    store: ContentStore, path: str | os.PathLike[str], on_progress: ProgressCallback | None = None
) -> str:
    """Store a file, streaming when the backend can; return its CIDv1."""
    if isinstance(store, FileContentStore):
        return store.put_file(path, on_progress)
    with open(path, "rb") as source:
        return store.put(source.read())


def open_store(settings: Settings, *, timeout: float = 30.0) -> ContentStore:
    """The content store `settings.store` selects: `local` (blocks under
    `settings.blockstore_dir`) or `kubo` (the RPC API at `settings.ipfs_api_url`)."""
    if settings.store == "kubo":
        return KuboStore(settings.ipfs_api_url, timeout=timeout)
    return LocalBlockstore(settings.blockstore_dir)
