"""A `ContentStore` over a Kubo (or Kubo-compatible) IPFS node's RPC API, with httpx.

The node is not trusted: every `add` is checked against the CID computed locally for the
same bytes, and every read is hashed before it is returned. The parameters pinned on
`add` (`cid-version=1`, `raw-leaves=true`, 256 KiB chunks, sha2-256) are what make the
node's CID equal the local one; a node configured otherwise is reported, not trusted.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, BinaryIO, Final

import httpx

from ledger.store.car import read_car, write_car
from ledger.store.cid import CID, parse_cid
from ledger.store.errors import (
    CIDMismatchError,
    ContentIntegrityError,
    ContentNotFoundError,
    ContentStoreError,
    InvalidCIDError,
    IpfsNodeError,
    UnreachableError,
)
from ledger.store.unixfs import ProgressCallback, cid_of, cid_of_file, iter_file

ADD_PARAMS: Final[dict[str, str]] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "pin": "true",
    "cid-base": "base32",
    "progress": "false",
}

_BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# Phrases nodes use when a block is absent (Kubo offline, js-ipfs with a timeout).
_NOT_FOUND_HINTS: Final = ("not found", "timed out", "timeout", "no link named")


def normalize_cid(text: str) -> CID:
    """Parse a CID as a node prints it: base32 (`b...`) or base58btc (`z...`) CIDv1."""
    if text.startswith("z"):
        value = 0
        for char in text[1:]:
            index = _BASE58_ALPHABET.find(char)
            if index < 0:
                raise InvalidCIDError(f"{text!r} is not valid base58btc")
            value = value * 58 + index
        body = value.to_bytes((value.bit_length() + 7) // 8, "big")
        leading_zeros = len(text[1:]) - len(text[1:].lstrip("1"))
        return CID.from_binary(b"\x00" * leading_zeros + body)
    return CID.parse(text)


class KuboStore:
    """Content store backed by an IPFS node's `/api/v0` RPC API."""

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        timeout: float = 30.0,
        *,
        has_timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`api_url` is the node's RPC base URL (no `/api/v0`). `timeout` bounds each network
        wait; `has_timeout` bounds how long `has` lets a node look for an absent block.
        `transport` lets tests inject an `httpx.MockTransport`."""
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.has_timeout = has_timeout
        self._client = httpx.Client(base_url=f"{self.api_url}/api/v0/", timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- transport -------------------------------------------------------------

    def _call(
        self,
        endpoint: str,
        params: dict[str, str] | None = None,
        *,
        files: dict[str, Any] | None = None,
        subject: str = "",
    ) -> httpx.Response:
        """POST one RPC call (Kubo accepts only POST); map failures to store errors."""
        try:
            response = self._client.post(endpoint, params=params, files=files)
        except httpx.TimeoutException as exc:
            raise UnreachableError(
                f"IPFS node at {self.api_url} did not answer /api/v0/{endpoint} within {self.timeout:g} s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"IPFS node at {self.api_url} is unreachable ({type(exc).__name__}: {exc}); "
                "is the daemon running and is SOV_IPFS_API_URL right?"
            ) from exc
        if response.status_code != 200:
            self._raise_for_answer(endpoint, response, subject)
        return response

    def _raise_for_answer(self, endpoint: str, response: httpx.Response, subject: str) -> None:
        about = f" for {subject}" if subject else ""
        try:
            message = str(response.json().get("Message", response.text))
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            if response.status_code in (404, 405):
                raise IpfsNodeError(
                    f"{self.api_url} has no /api/v0/{endpoint} (HTTP {response.status_code}): "
                    "is it an IPFS node's RPC API address?"
                ) from None
            message = response.text.strip()[:200] or response.reason_phrase
        if any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
            raise ContentNotFoundError(f"IPFS node at {self.api_url} has no content{about}: {message}")
        raise IpfsNodeError(
            f"IPFS node at {self.api_url} refused /api/v0/{endpoint}{about} "
            f"(HTTP {response.status_code}): {message}"
        )

    @staticmethod
    def _json_lines(response: httpx.Response) -> Iterator[dict[str, Any]]:
        for line in response.text.splitlines():
            if line.strip():
                entry = json.loads(line)
                if isinstance(entry, dict):
                    yield entry

    def _node_timeout(self) -> str:
        # Ask the node to give up a little before our own read timeout, so an absent
        # block comes back as the node's "not found" answer rather than a dead socket.
        return f"{max(self.timeout - 1.0, 1.0):g}s"

    # --- ContentStore ----------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """The node's `/api/v0/version` answer (a cheap liveness check)."""
        answer = self._call("version").json()
        if not isinstance(answer, dict):
            raise IpfsNodeError(f"IPFS node at {self.api_url} answered /api/v0/version with {answer!r}")
        return answer

    def _add(self, upload: Any, expected: str) -> str:
        response = self._call("add", ADD_PARAMS, files={"file": ("blob", upload, "application/octet-stream")})
        hashes = [entry["Hash"] for entry in self._json_lines(response) if "Hash" in entry]
        if not hashes:
            raise IpfsNodeError(
                f"IPFS node at {self.api_url} answered add without a CID: {response.text[:200]!r}"
            )
        reported = str(normalize_cid(str(hashes[-1])))
        if reported != expected:
            raise CIDMismatchError(
                f"IPFS node at {self.api_url} stored the content as {reported}, but its CIDv1 with raw "
                f"leaves, 256 KiB chunks and 174 links per node is {expected}; check the node's Import "
                "settings (UnixFSChunker, UnixFSFileMaxLinks)"
            )
        return reported

    def put(self, data: bytes) -> str:
        """Add and pin `data`; return its CIDv1 after checking the node computed the same one."""
        return self._add(bytes(data), cid_of(data))

    def put_file(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None = None) -> str:
        """Add and pin a file, streaming it to the node; the CID is checked as in `put`.
        `on_progress` follows the local hashing pass (the upload streams after it)."""
        expected = cid_of_file(path, on_progress)
        with open(path, "rb") as upload:
            return self._add(upload, expected)

    def get(self, cid: str) -> bytes:
        """The bytes of `cid`, verified: they must rebuild to `cid` (fast path: `cat` and
        recompute), or else every block of the DAG is fetched and checked one by one."""
        root = parse_cid(cid)
        subject = str(root)
        data = self._call("cat", {"arg": subject, "timeout": self._node_timeout()}, subject=subject).content
        if cid_of(data) == subject:
            return data
        # The DAG may use another layout (chunker, trickle, CIDv1 without raw leaves), so a
        # different recomputed CID alone proves nothing: verify block by block instead.
        blocks = self._fetch_dag(root)
        try:
            verified = b"".join(iter_file(root, lambda child: self._from(blocks, child, root)))
        except ContentNotFoundError as exc:
            raise ContentIntegrityError(
                f"IPFS node at {self.api_url} exported an incomplete DAG for {root}: {exc}"
            ) from exc
        if verified != data:
            raise ContentIntegrityError(
                f"IPFS node at {self.api_url} returned bytes for {root} that do not hash to it; "
                "they were discarded"
            )
        return verified

    @staticmethod
    def _from(blocks: dict[CID, bytes], cid: CID, root: CID) -> bytes:
        try:
            return blocks[cid]
        except KeyError:
            raise ContentNotFoundError(f"block {cid} of {root} is missing") from None

    def _fetch_dag(self, root: CID) -> dict[CID, bytes]:
        """Every block of the DAG under `root`, from `dag/export`, each verified."""
        car = self._call(
            "dag/export", {"arg": str(root), "timeout": self._node_timeout()}, subject=str(root)
        ).content
        try:
            _, sections = read_car(io.BytesIO(car))
            return dict(sections)
        except ContentIntegrityError as exc:
            raise ContentIntegrityError(
                f"IPFS node at {self.api_url} returned damaged data for {root}, discarded: {exc}"
            ) from exc

    def has(self, cid: str) -> bool:
        """Whether the node holds the root block of `cid` locally (it is told not to search
        the network)."""
        root = str(parse_cid(cid))
        params = {"arg": root, "offline": "true", "timeout": f"{self.has_timeout:g}s", "cid-base": "base32"}
        try:
            self._call("block/stat", params, subject=root)
        except ContentNotFoundError:
            return False
        return True

    def pin(self, cid: str) -> None:
        """Pin `cid` (recursively) on the node."""
        root = str(parse_cid(cid))
        self._call(
            "pin/add", {"arg": root, "recursive": "true", "timeout": self._node_timeout()}, subject=root
        )

    def export_car(self, cids: Iterable[str], out: BinaryIO) -> None:
        """Write one CARv1 with the DAGs of `cids`, every block verified before writing."""
        roots = [parse_cid(cid) for cid in cids]
        if not roots:
            raise ContentStoreError("export_car needs at least one CID")
        blocks: dict[CID, bytes] = {}
        for root in roots:
            for cid, block in self._fetch_dag(root).items():
                blocks.setdefault(cid, block)
        write_car(roots, blocks.items(), out)

    def import_car(self, src: BinaryIO) -> list[str]:
        """Verify a CARv1 locally, then import it into the node and pin its roots."""
        car = src.read()
        roots, sections = read_car(io.BytesIO(car))
        for _ in sections:  # verification happens while iterating
            pass
        response = self._call(
            "dag/import",
            {"pin-roots": "true"},
            files={"file": ("import.car", car, "application/vnd.ipld.car")},
        )
        for entry in self._json_lines(response):
            root_entry = entry.get("Root")
            if isinstance(root_entry, dict) and root_entry.get("PinErrorMsg"):
                raise IpfsNodeError(
                    f"IPFS node at {self.api_url} imported the CAR but could not pin "
                    f"{root_entry.get('Cid')}: {root_entry['PinErrorMsg']}"
                )
        return [str(root) for root in roots]
