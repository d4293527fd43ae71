"""Change notifications: the contracts' events as CloudEvents 1.0, read from a resumable cursor.

One code path feeds `sov watch`, the service's Server-Sent Events stream and its webhooks:
`EventFeed.poll()` reads `eth_getLogs` from its position up to `head - confirmations`, decodes
the logs with the deployment's ABIs (`LedgerClient.get_logs`, the decoder the index and the
audit use), and returns `ChangeEvent`s, each rendered as a CloudEvent in structured JSON form:

    {"specversion": "1.0", "id": "31337:57:0:5f0c…", "source": "sov://31337/0xUsageGrants…",
     "type": "org.sovereign-ledger.grant.revoked", "subject": "0x…dataset/0xGrantee/ai-training",
     "time": "2026-12-02T14:01:07Z", "datacontenttype": "application/json",
     "data": {...decoded fields...}, "chainid": 31337, "blocknumber": 57, "blockhash": "0x…",
     "txhash": "0x…", "logindex": 0}

**Ids are stable and are the cursor.** `id = <chainId>:<block>:<logIndex>:<digest>` where
`digest` is the first 16 hex digits of sha256 over `<chainId>:<blockHash>:<txHash>:<logIndex>`.
The same log in the same block always gets the same id (receivers deduplicate on it); a log
that a reorg moves to another block gets a new one. Passing an id back (`resume_after`) resumes
right after that event; the digest tells whether the chain still holds it: if the block was
reorganised away the whole block is read again.

**Reorgs.** With `confirmations=K` an event is emitted only once K blocks sit on top of its
block (0, the devnet default, emits at once). While following, the hashes of recently read
blocks are kept; before each poll the newest is compared with the chain, and on a mismatch the
feed rewinds to the highest block the chain still has and reads forward again (events of the
new branch get new ids).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger.chain.types import BlockRef, DecodedEvent
from ledger.errors import LedgerError, RPCError
from ledger.purposes import describe_purpose

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient

log = logging.getLogger(__name__)

SPEC_VERSION = "1.0"
TYPE_PREFIX = "org.sovereign-ledger."
CONTENT_TYPE = "application/json"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEFAULT_CHUNK_BLOCKS = 2000
# Enough recent block hashes to find the fork point of any devnet or L2 reorg.
ANCHORS_KEPT = 256
# A poll reads at most this many ranges, so a feed far behind still yields now and then.
MAX_RANGES_PER_POLL = 10
MAX_RANGE_RETRIES = 8

# (contract, Solidity event) -> CloudEvents type suffix. Approvals and EIP-712 domain
# notices are not changes a consumer of datasets, grants or rounds acts on.
EVENT_TYPES: dict[tuple[str, str], str] = {
    ("DatasetRegistry", "DatasetRegistered"): "dataset.registered",
    ("DatasetRegistry", "DatasetRetired"): "dataset.retired",
    ("DatasetRegistry", "Transfer"): "dataset.transferred",
    ("UsageGrants", "GrantIssued"): "grant.issued",
    ("UsageGrants", "GrantRevoked"): "grant.revoked",
    ("UsageGrants", "NoncesInvalidated"): "grant.nonces-invalidated",
    ("TrainingLedger", "JobCreated"): "job.created",
    ("TrainingLedger", "RoundCommitted"): "round.committed",
}
TYPE_NAMES: tuple[str, ...] = tuple(EVENT_TYPES.values())
# Groups a filter may name: every type starts with one of these.
TYPE_GROUPS: tuple[str, ...] = ("dataset", "grant", "job", "round")

# uint256 ids, written as 0x + 64 hex digits (the form every other sov output uses).
_ID_FIELDS = frozenset({"datasetId", "tokenId", "parentId", "datasets", "participants"})
_EVENT_ID = re.compile(r"^(\d+):(\d+):(\d+):([0-9a-f]{16})$")


class EventStreamError(LedgerError):
    """Root of change-notification failures."""


class InvalidCursorError(EventStreamError, ValueError):
    """A cursor (event id, `Last-Event-ID`) that is not one this feed issued."""


class UnknownEventTypeError(EventStreamError, ValueError):
    """A type filter that names no event type."""


def event_digest(chain_id: int, block_hash: str, tx_hash: str, log_index: int) -> str:
    """The 16 hex digits that tie an event id to its block and transaction."""
    text = f"{chain_id}:{block_hash.lower()}:{tx_hash.lower()}:{log_index}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def event_id(chain_id: int, block_number: int, block_hash: str, tx_hash: str, log_index: int) -> str:
    """The stable id of the log at (block, log index): `<chainId>:<block>:<logIndex>:<digest>`."""
    return f"{chain_id}:{block_number}:{log_index}:{event_digest(chain_id, block_hash, tx_hash, log_index)}"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A parsed event id: the position right after which a feed resumes."""

    chain_id: int
    block_number: int
    log_index: int
    digest: str

    @property
    def event_id(self) -> str:
        """The id this cursor was parsed from."""
        return f"{self.chain_id}:{self.block_number}:{self.log_index}:{self.digest}"


def parse_cursor(text: str, *, chain_id: int | None = None) -> Cursor:
    """An event id as a cursor; raises `InvalidCursorError` naming the expected form."""
    match = _EVENT_ID.match(text.strip())
    if match is None:
        raise InvalidCursorError(
            f"cursor {text[:120]!r} is not an event id; expected <chainId>:<block>:<logIndex>:<16 hex "
            "digits>, the id of the last event received (e.g. 31337:57:0:5f0c2a9e41d3b7c8)"
        )
    cursor = Cursor(int(match[1]), int(match[2]), int(match[3]), match[4])
    if chain_id is not None and cursor.chain_id != chain_id:
        raise InvalidCursorError(
            f"cursor {cursor.event_id} is an event of chain {cursor.chain_id}; "
            f"this feed reads chain {chain_id}"
        )
    return cursor


def normalise_types(filters: Iterable[str] | None) -> tuple[str, ...]:
    """Type filters as suffixes (`grant`, `grant.revoked`); the full `org.sovereign-ledger.` form too.

    Raises `UnknownEventTypeError` for a filter that matches no type, suggesting the closest.
    """
    out: list[str] = []
    for raw in filters or ():
        for part in raw.split(","):
            name = part.strip().removeprefix(TYPE_PREFIX)
            if not name:
                continue
            if name not in TYPE_GROUPS and name not in TYPE_NAMES:
                import difflib

                close = difflib.get_close_matches(name, [*TYPE_GROUPS, *TYPE_NAMES], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UnknownEventTypeError(
                    f"no event type {part.strip()!r}; {hint}types are {', '.join(TYPE_NAMES)} "
                    f"(or a group: {', '.join(TYPE_GROUPS)})"
                )
            out.append(name)
    return tuple(dict.fromkeys(out))


def type_matches(event_type: str, filters: Sequence[str]) -> bool:
    """Whether a full CloudEvents type passes the (normalised) filters; no filters pass everything."""
    if not filters:
        return True
    suffix = event_type.removeprefix(TYPE_PREFIX)
    return any(suffix == f or suffix.startswith(f + ".") for f in filters)


def _rfc3339(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id_text(value: int) -> str:
    return f"0x{value:064x}"


def _json_value(name: str, value: Any) -> Any:
    if name in _ID_FIELDS:
        if isinstance(value, list | tuple):
            return [_id_text(int(v)) for v in value]
        return _id_text(int(value))
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # JSON readers lose integers past 2**53: keep those exact as decimal strings.
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, list | tuple):
        return [_json_value("", v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One contract event as a CloudEvent, with the chain position it came from."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    data: dict[str, Any]
    chain_id: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 structured-mode JSON object (position as extension attributes)."""
        return {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": CONTENT_TYPE,
            "data": self.data,
            "chainid": self.chain_id,
            "blocknumber": self.block_number,
            "blockhash": self.block_hash,
            "txhash": self.tx_hash,
            "logindex": self.log_index,
        }

    def to_json(self) -> str:
        """The CloudEvent as one compact JSON line (sorted keys: same event, same bytes)."""
        return json.dumps(self.to_cloudevent(), sort_keys=True, separators=(",", ":"))


def to_change_event(chain_id: int, event: DecodedEvent, timestamp: int) -> ChangeEvent | None:
    """The CloudEvent of a decoded log (None for logs that are not change notifications)."""
    suffix = EVENT_TYPES.get((event.contract, event.name))
    if suffix is None:
        return None
    args = event.args
    if suffix == "dataset.transferred" and ZERO_ADDRESS in (str(args["from"]), str(args["to"])):
        return None  # the mint is announced by dataset.registered
    data = {name: _json_value(name, value) for name, value in args.items()}
    if "purpose" in args:
        data["purposeName"] = describe_purpose(bytes(args["purpose"]))
    if suffix.startswith("dataset."):
        subject = data.get("datasetId", data.get("tokenId"))
    elif suffix in ("grant.issued", "grant.revoked"):
        subject = f"{data['datasetId']}/{data['grantee']}/{data['purposeName']}"
    elif suffix == "grant.nonces-invalidated":
        subject = data["owner"]
    else:
        subject = str(data["jobId"])
    return ChangeEvent(
        id=event_id(chain_id, event.block_number, event.block_hash, event.tx_hash, event.log_index),
        source=f"sov://{chain_id}/{event.address}",
        type=TYPE_PREFIX + suffix,
        subject=str(subject),
        time=_rfc3339(timestamp),
        data=data,
        chain_id=chain_id,
        block_number=event.block_number,
        block_hash=event.block_hash,
        tx_hash=event.tx_hash,
        log_index=event.log_index,
    )


class _ChainMoved(Exception):
    """A range's logs disagree with the headers read after them (internal: read it again)."""


@dataclass
class EventFeed:
    """Reads the contracts' change events forward from a position, one `poll()` at a time.

    Not thread-safe: one feed per consumer (a CLI process, an SSE connection, a subscription).
    """

    client: LedgerClient
    confirmations: int = 0
    types: tuple[str, ...] = ()
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS
    next_block: int = field(init=False)
    last_id: str | None = field(init=False, default=None)
    _resume: Cursor | None = field(init=False, default=None)
    _anchors: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.confirmations < 0:
            raise ValueError(f"confirmations must be 0 or more; got {self.confirmations}")
        if self.chunk_blocks < 1:
            raise ValueError(f"chunk_blocks must be at least 1; got {self.chunk_blocks}")
        self.types = normalise_types(self.types)
        self.chain_id = int(self.client.chain_id)
        self.deployed_block = int(self.client.deployment.deployed_block)
        self.next_block = self.deployed_block

    # ------------------------------------------------------------------ positioning

    def start_at(self, block: int) -> EventFeed:
        """Emit every event from block `block` on (the deployment block at the earliest)."""
        if block < 0:
            raise ValueError(f"from block must be 0 or more; got {block}")
        self.next_block = max(block, self.deployed_block)
        self._resume = None
        self._anchors.clear()
        return self

    def start_at_head(self) -> EventFeed:
        """Emit the events that get confirmed from now on: those after the current head with no
        confirmations, also those of the last `confirmations` blocks (not yet confirmed) with some."""
        return self.start_at(self.target_block() + 1)

    def resume_after(self, cursor: str | Cursor) -> EventFeed:
        """Emit the events after the one whose id is `cursor` (its whole block if it was reorged away)."""
        parsed = cursor if isinstance(cursor, Cursor) else parse_cursor(cursor, chain_id=self.chain_id)
        if parsed.chain_id != self.chain_id:
            raise InvalidCursorError(
                f"cursor {parsed.event_id} is an event of chain {parsed.chain_id}; "
                f"this feed reads chain {self.chain_id}"
            )
        head = self.client.block("latest").number
        if parsed.block_number > head:
            # A devnet restarted from scratch keeps its chain id but not its blocks.
            raise InvalidCursorError(
                f"cursor {parsed.event_id} names block {parsed.block_number}, but chain "
                f"{self.chain_id} is at block {head}: the chain was reset since, or the id is from "
                "another node; "
                "start again with a block number (--from-block / from_block)"
            )
        self.start_at(parsed.block_number)
        self._resume = parsed
        self.last_id = parsed.event_id
        return self

    @property
    def cursor(self) -> str | None:
        """The id of the last event emitted (or resumed after): pass it back to resume."""
        return self.last_id

    # ------------------------------------------------------------------ reading

    def target_block(self) -> int:
        """The newest block this feed reads now: head minus the confirmations."""
        return self.client.block("latest").number - self.confirmations

    def poll(self, *, until_block: int | None = None) -> list[ChangeEvent]:
        """The events that landed since the last poll (up to `until_block` when given), in chain order."""
        self._rewind_if_reorged()
        target = self.target_block()
        if until_block is not None:
            target = min(target, until_block)
        out: list[ChangeEvent] = []
        ranges = 0
        retries = 0
        while self.next_block <= target and ranges < MAX_RANGES_PER_POLL:
            start = self.next_block
            end = min(start + self.chunk_blocks - 1, target)
            try:
                events, end_hash = self._read_range(start, end)
            except _ChainMoved as moved:
                retries += 1
                if retries > MAX_RANGE_RETRIES:
                    raise EventStreamError(
                        f"the chain kept reorganising while blocks {start}..{end} were read "
                        f"({retries} attempts); try again, or use --confirmations"
                    ) from None
                log.info("chain moved while reading %d..%d (%s); reading again", start, end, moved)
                continue
            except RPCError as error:
                if end == start:
                    if out:
                        break  # hand over what was read; the next poll meets the error again
                    raise
                # Providers cap eth_getLogs by block range or result size: halve the range.
                self.chunk_blocks = max(1, (end - start + 1) // 2)
                log.info(
                    "eth_getLogs %d..%d refused (%s); ranges now %d blocks",
                    start,
                    end,
                    error,
                    self.chunk_blocks,
                )
                continue
            except (LedgerError, OSError):
                if out:
                    break
                raise
            out.extend(self._after_resume_point(events))
            self._anchors[end] = end_hash
            for event in events:
                self._anchors[event.block_number] = event.block_hash
            while len(self._anchors) > ANCHORS_KEPT:
                del self._anchors[min(self._anchors)]
            self.next_block = end + 1
            ranges += 1
        out = [e for e in out if type_matches(e.type, self.types)]
        if out:
            self.last_id = out[-1].id
        return out

    def _read_range(self, start: int, end: int) -> tuple[list[ChangeEvent], str]:
        decoded = sorted(self.client.get_logs(start, end), key=lambda e: (e.block_number, e.log_index))
        headers: dict[int, BlockRef] = {}
        for number in sorted({e.block_number for e in decoded} | {end}):
            headers[number] = self.client.block(number)
        events: list[ChangeEvent] = []
        for entry in decoded:
            if headers[entry.block_number].hash.lower() != entry.block_hash.lower():
                raise _ChainMoved(f"a log of block {entry.block_number} is from another branch")
            change = to_change_event(self.chain_id, entry, headers[entry.block_number].timestamp)
            if change is not None:
                events.append(change)
        return events, headers[end].hash

    def _after_resume_point(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        resume = self._resume
        if resume is None:
            return events
        self._resume = None
        same_block = [e for e in events if e.block_number == resume.block_number]
        if any(e.id == resume.event_id for e in same_block):
            return [
                e for e in events if (e.block_number, e.log_index) > (resume.block_number, resume.log_index)
            ]
        log.warning(
            "event %s is no longer on chain %d (reorganised); re-reading block %d whole",
            resume.event_id,
            self.chain_id,
            resume.block_number,
        )
        return events

    def _rewind_if_reorged(self) -> None:
        if not self._anchors:
            return
        newest = max(self._anchors)
        if self._hash_at(newest) == self._anchors[newest]:
            return
        fork = self.deployed_block - 1
        for number in sorted(self._anchors, reverse=True)[1:]:
            if self._hash_at(number) == self._anchors[number]:
                fork = number
                break
        for number in [n for n in self._anchors if n > fork]:
            del self._anchors[number]
        log.warning(
            "chain %d reorganised above block %d: reading forward from there again", self.chain_id, fork
        )
        self.next_block = fork + 1

    def _hash_at(self, number: int) -> str | None:
        try:
            return self.client.block(number).hash
        except LookupError:
            return None

    def follow(
        self,
        *,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
        until_block: int | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> Iterator[ChangeEvent]:
        """Every event from the position on, as it lands; ends at `until_block` or when `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            yield from self.poll(until_block=until_block)
            if until_block is not None and self.next_block > until_block:
                return
            if on_idle is not None:
                on_idle()
            if stop.wait(poll_interval):
                return


@dataclass(frozen=True, slots=True)
class AuthorityLoss:
    """Why a job's coordinator lost a grant it depends on (for `sov job run --stop-on-revocation`)."""

    event: ChangeEvent
    dataset_id: int
    reason: str

    def describe(self) -> str:
        """One sentence for people."""
        where = f"block {self.event.block_number} (tx {self.event.tx_hash}, event {self.event.id})"
        return f"{self.reason} in {where}"


def authority_losses(
    events: Iterable[ChangeEvent], *, datasets: Iterable[int], coordinator: str, purpose: bytes
) -> list[AuthorityLoss]:
    """The events that end a job's authority over one of its datasets: its grant revoked (or
    renounced), the dataset retired, or the deed transferred (grants do not survive an owner change)."""
    wanted = {_id_text(d) for d in datasets}
    lab = coordinator.lower()
    purpose_hex = "0x" + bytes(purpose).hex()
    found: list[AuthorityLoss] = []
    for event in events:
        data: Mapping[str, Any] = event.data
        suffix = event.type.removeprefix(TYPE_PREFIX)
        dataset = data.get("datasetId", data.get("tokenId"))
        if dataset not in wanted:
            continue
        if suffix == "grant.revoked":
            if str(data["grantee"]).lower() != lab or data["purpose"] != purpose_hex:
                continue
            reason = (
                f"the grant on dataset {dataset} to {data['grantee']} for '{data['purposeName']}' was revoked"
            )
        elif suffix == "dataset.retired":
            reason = f"dataset {dataset} was retired by its owner"
        elif suffix == "dataset.transferred":
            reason = f"dataset {dataset} was transferred to {data['to']} (its grants end with the transfer)"
        else:
            continue
        found.append(AuthorityLoss(event=event, dataset_id=int(str(dataset), 16), reason=reason))
    return found
