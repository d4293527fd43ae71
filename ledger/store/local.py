"""The embedded content store: UnixFS blocks as files under one directory.

Layout (close to Kubo's flatfs `next-to-last/2` sharding, so a directory never holds
more than ~1/1024 of the blocks):

    <dir>/<2 chars>/<cid>.data   one file per block, named by its base32 CID
    <dir>/pins/<cid>             one empty file per pinned root
    <dir>/.tmp/                  partly written files, renamed into place when complete

Every block is written to `.tmp` and renamed, so a reader (or a crash) never sees half
a block. Every read hashes the block and compares it with its CID: damaged or swapped
files raise `ContentIntegrityError` and no bytes are returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ledger.store.car import read_car, write_car
from ledger.store.cid import CID, RAW, parse_cid
from ledger.store.errors import (
    BlockstoreIOError,
    ContentIntegrityError,
    ContentNotFoundError,
    ContentStoreError,
    UnixFSFormatError,
)
from ledger.store.unixfs import (
    ProgressCallback,
    decode_file_node,
    import_bytes,
    import_stream,
    iter_dag,
    iter_file,
    links_of,
)


class LocalBlockstore:
    """A `ContentStore` over a directory of verified, immutable block files."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """Use `directory` (created on first write). `fsync=True` makes each write durable
        against power loss, at a large cost in write speed; renames are atomic either way."""
        self.directory = Path(directory)
        self._fsync = fsync
        # Directories this store made or found: a round writes ~25 files, and two mkdir calls
        # per file cost more than the write on a small block. Forgotten when a write finds one gone.
        self._made: set[Path] = set()

    def __repr__(self) -> str:
        return f"LocalBlockstore({str(self.directory)!r})"

    # --- block level ------------------------------------------------------------

    def block_path(self, cid: str | CID) -> Path:
        """Where the block of `cid` lives (whether or not it exists)."""
        text = str(parse_cid(cid))
        return self.directory / text[-3:-1] / f"{text}.data"

    def _unusable(self, exc: OSError) -> BlockstoreIOError:
        return BlockstoreIOError(f"cannot write to the local store at {self.directory}: {exc}")

    def _ensure_dir(self, directory: Path) -> None:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)

    def _write_atomically(self, target: Path, data: bytes | memoryview) -> None:
        tmp_dir = self.directory / ".tmp"
        for attempt in (0, 1):
            try:
                self._ensure_dir(tmp_dir)
                self._ensure_dir(target.parent)
                handle, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=target.name[:16], suffix=".part")
                break
            except FileNotFoundError as exc:  # a directory was removed behind our back: make it again
                self._made.clear()
                if attempt:
                    raise self._unusable(exc) from exc
            except OSError as exc:
                raise self._unusable(exc) from exc
        try:
            with os.fdopen(handle, "wb") as tmp:
                tmp.write(data)
                if self._fsync:
                    tmp.flush()
                    os.fsync(tmp.fileno())
            try:
                os.replace(tmp_name, target)
            except FileNotFoundError:  # the target's directory went away meanwhile
                self._made.clear()
                self._ensure_dir(target.parent)
                os.replace(tmp_name, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            if isinstance(exc, OSError):
                raise BlockstoreIOError(f"cannot write {target}: {exc}") from exc
            raise

    def put_block(self, cid: CID, block: bytes | memoryview) -> None:
        """Store one block under its CID (a no-op when present). The caller vouches that
        `block` hashes to `cid`; the importer and the CAR reader both guarantee it."""
        target = self.block_path(cid)
        if not target.exists():
            self._write_atomically(target, block)

    def has_block(self, cid: str | CID) -> bool:
        """Whether the block file of `cid` exists (its contents are not checked)."""
        return self.block_path(cid).is_file()

    def get_block(self, cid: str | CID) -> bytes:
        """The verified bytes of one block."""
        parsed = parse_cid(cid)
        path = self.block_path(parsed)
        try:
            block = path.read_bytes()
        except FileNotFoundError:
            raise ContentNotFoundError(f"no block {parsed} in the local store at {self.directory}") from None
        except OSError as exc:
            raise BlockstoreIOError(f"cannot read block {parsed} from {path}: {exc}") from exc
        digest = hashlib.sha256(block).digest()
        if digest != parsed.digest:
            raise ContentIntegrityError(
                f"block {parsed} in {path} is damaged: its bytes hash to sha2-256 {digest.hex()}, "
                f"not {parsed.digest.hex()}; no data was returned"
            )
        return block

    def _get_block(self, cid: CID) -> bytes:
        return self.get_block(cid)

    # --- ContentStore -----------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data` as a UnixFS file; return its CIDv1 (Kubo-identical)."""
        return str(import_bytes(data, self.put_block))

    def put_file(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None = None) -> str:
        """Store a file's contents, streaming it chunk by chunk; return its CIDv1."""
        with open(path, "rb", buffering=0) as stream:
            return str(import_stream(stream, self.put_block, on_progress))

    def get(self, cid: str) -> bytes:
        """The file bytes of `cid`, every block verified; raises before returning anything
        if a block is missing (`ContentNotFoundError`) or damaged (`ContentIntegrityError`)."""
        root = parse_cid(cid)
        try:
            return b"".join(iter_file(root, self._get_block))
        except ContentNotFoundError as exc:
            raise ContentNotFoundError(f"cannot read {root}: {exc}") from exc

    def get_buffer(self, cid: str) -> bytearray:
        """`get`, into one buffer of the file's size filled block by block as each is verified.

        `get` joins the blocks into a new `bytes`, so the blocks and the file are in memory
        together (twice the file); here the file's size comes from its root node and each
        block is copied in and dropped, so a read holds the file once plus one block (the
        coordinator's fold reads stored updates this way). Same errors as `get`.
        """
        root = parse_cid(cid)
        try:
            size = (
                len(self.get_block(root))
                if root.codec == RAW
                else decode_file_node(self.get_block(root), root).file_size
            )
            if size is None:
                return bytearray(self.get(cid))
            out = bytearray(size)
            view = memoryview(out)
            at = 0
            for piece in iter_file(root, self._get_block):
                if at + len(piece) > size:
                    raise UnixFSFormatError(f"block {root}: holds more than the {size} bytes its node says")
                view[at : at + len(piece)] = piece
                at += len(piece)
            view.release()
        except ContentNotFoundError as exc:
            raise ContentNotFoundError(f"cannot read {root}: {exc}") from exc
        if at != size:
            raise UnixFSFormatError(f"block {root}: holds {at} bytes, node says {size}")
        return out

    def has(self, cid: str) -> bool:
        """Whether every block of the DAG under `cid` is present (dag-pb nodes are verified
        to follow their links; leaves are only checked for existence)."""
        root = parse_cid(cid)
        pending = [root]
        while pending:
            current = pending.pop()
            if not self.has_block(current):
                return False
            if current.codec != RAW:
                pending.extend(links_of(current, self.get_block(current)))
        return True

    def pin(self, cid: str) -> None:
        """Mark `cid` as pinned; it must be fully present."""
        root = parse_cid(cid)
        if not self.has(str(root)):
            raise ContentNotFoundError(f"cannot pin {root}: its blocks are not all in {self.directory}")
        marker = self.directory / "pins" / str(root)
        if not marker.exists():
            self._create_marker(marker)

    def _create_marker(self, marker: Path) -> None:
        """An empty file made in place: it has no content to be seen half-written, so no rename."""
        for attempt in (0, 1):
            try:
                self._ensure_dir(marker.parent)
                handle = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError as exc:  # the pins directory was removed: make it again
                self._made.clear()
                if attempt:
                    raise self._unusable(exc) from exc
                continue
            except OSError as exc:
                if isinstance(exc, FileExistsError) and marker.is_file():
                    return  # pinned by another thread meanwhile
                raise self._unusable(exc) from exc
            os.close(handle)
            return

    def pins(self) -> list[str]:
        """The pinned root CIDs, sorted."""
        pin_dir = self.directory / "pins"
        return sorted(entry.name for entry in pin_dir.iterdir()) if pin_dir.is_dir() else []

    def export_car(self, cids: Iterable[str], out: BinaryIO) -> None:
        """Write a CARv1 holding the DAGs of `cids` (each block once, verified as read)."""
        roots = [parse_cid(cid) for cid in cids]
        if not roots:
            raise ContentStoreError("export_car needs at least one CID")

        def blocks() -> Iterable[tuple[CID, bytes]]:
            seen: set[CID] = set()
            for root in roots:
                for cid, block in iter_dag(root, self._get_block):
                    if cid not in seen:
                        seen.add(cid)
                        yield cid, block

        # Check every root before the first byte goes out, so a missing root does not
        # leave a half-written CAR behind.
        for root in roots:
            if not self.has(str(root)):
                raise ContentNotFoundError(
                    f"cannot export {root}: its blocks are not all in {self.directory}"
                )
        write_car(roots, blocks(), out)

    def import_car(self, src: BinaryIO) -> list[str]:
        """Import a CARv1: verify every block, check the roots are complete, then store and
        pin them. On any error the store is left exactly as it was."""
        roots, sections = read_car(src)
        tmp_root = self.directory / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=tmp_root, prefix="car-import-"))
        try:
            staged = LocalBlockstore(staging)
            for cid, block in sections:
                staged.put_block(cid, block)

            def load(cid: CID) -> bytes:
                return staged.get_block(cid) if staged.has_block(cid) else self.get_block(cid)

            for root in roots:
                try:
                    for _ in iter_dag(root, load):
                        pass
                except ContentNotFoundError as exc:
                    raise ContentNotFoundError(f"CAR root {root} is incomplete: {exc}") from exc
            for shard in staging.iterdir():
                if shard.name.startswith("."):
                    continue
                for block_file in shard.iterdir():
                    target = self.directory / shard.name / block_file.name
                    if not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(block_file, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for root in roots:
            self.pin(str(root))
        return [str(root) for root in roots]
