"""The event index: every event of the three contracts, in SQLite, kept in step with the chain.

The chain is the source of truth; the index is a cache that can always be rebuilt
(`EventIndex.rebuild`). What makes it trustworthy:

- **Incremental and resumable.** Logs are fetched in block ranges from the deployment
  block on; the rows of a range and the new cursor are written in one SQLite
  transaction (WAL), so a crash leaves either the whole range or none of it.
- **Reorg-aware.** The hash of the last block of every range and of every block that
  carries an event is stored. Before each range the stored cursor block is compared with
  the chain; on a mismatch the index walks down its stored blocks to the highest one the
  chain still has (everything below it is then canonical, by the hash chain) and deletes
  every row above it. Each fetched log must carry the hash of the block the chain reports,
  and a range must start on the child of the stored cursor block, or it is fetched again.
- **Versioned schema.** `SCHEMA_VERSION` is stored in the file; an index written by an
  older version is migrated in place (one transaction, from the raw `events` rows it already
  holds, so nothing is fetched again); one of a version this code does not know is rebuilt.
- **Append-only history.** Rows are facts at a (block, log index) position: grants are
  kept as their issue/revoke history, deeds as their transfers. Current state and "the
  grant as it stood at a round's block" are derived from the history by queries, so a
  rewind is a plain `DELETE ... WHERE block_number > fork`.

Ids that are uint256 (dataset ids) are stored as `0x` + 64 hex digits so that they sort
numerically as text; 32-byte values as `0x` hex; addresses EIP-55 checksummed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import BlockNotFound
from web3.types import RPCEndpoint

from ledger.chain.types import AuthorizationStatus, GrantTerms
from ledger.errors import ConfigurationError, LedgerError, UnreachableError
from ledger.settings import Settings

log = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACT_NAMES = ("DatasetRegistry", "UsageGrants", "TrainingLedger")
# 2: grant terms on grant_events, the large_rounds table (1 is migrated in place, see _migrate).
SCHEMA_VERSION = "2"
# GrantIssued's terms fields, in the order of `GrantTerms.from_chain` and of the columns.
TERM_FIELDS = ("epsilonHundredths", "deltaNegExponent", "minParticipants", "maxRounds")
TERM_COLUMNS = ("epsilon_hundredths", "delta_neg_exponent", "min_participants", "max_rounds")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEFAULT_CHUNK_SIZE = 2000
# A range whose logs keep disagreeing with the chain's headers means the chain is
# reorganising under us faster than we can read it; give up rather than spin.
MAX_RANGE_RETRIES = 8


class EventIndexError(LedgerError):
    """Root of event-index failures."""


class NotIndexedError(EventIndexError, LookupError):
    """The index holds no such dataset, job or round (it may not be synced far enough)."""


class ChainMovedError(EventIndexError, RuntimeError):
    """The chain kept reorganising while a block range was read; retry the sync."""


# The index answers with the contract's own status values (one enum, one precedence).
GrantStatus = AuthorizationStatus


class DeploymentLike(Protocol):
    """What the index needs to know about a deployment (`ledger.deploy.Deployment` fits)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def addresses(self) -> Mapping[str, str]: ...

    @property
    def deployed_block(self) -> int: ...


class ChainSource(Protocol):
    """Anything with a `Web3` and a deployment (`ledger.chain.client.LedgerClient` fits)."""

    @property
    def w3(self) -> Web3: ...

    @property
    def deployment(self) -> DeploymentLike: ...


# ---------------------------------------------------------------------------------------
# records returned by queries


@dataclass(frozen=True, slots=True)
class DeedTransfer:
    """An ERC-721 Transfer of a dataset deed (`from_address` is the zero address for the mint)."""

    dataset_id: int
    from_address: str
    to_address: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class IndexedDataset:
    """A registered dataset as the index sees it at its synced block."""

    dataset_id: int
    registrant: str
    owner: str
    parent_id: int
    uri: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    epoch: int
    retired_block: int | None
    retired_tx: str | None
    transfers: tuple[DeedTransfer, ...]

    @property
    def retired(self) -> bool:
        """Whether consent was withdrawn."""
        return self.retired_block is not None


@dataclass(frozen=True, slots=True)
class GrantEvent:
    """One GrantIssued (`kind == "issued"`, with its window) or GrantRevoked event."""

    dataset_id: int
    grantee: str
    purpose: bytes
    kind: Literal["issued", "revoked"]
    not_before: int | None
    expires_at: int | None
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    terms: GrantTerms | None = None  # an issue's terms (None for a revocation)


@dataclass(frozen=True, slots=True)
class IndexedGrant:
    """The current grant for a (dataset, grantee, purpose): its latest issue and what followed it."""

    dataset_id: int
    grantee: str
    purpose: bytes
    not_before: int
    expires_at: int
    issued_block: int
    issued_tx: str
    epoch: int
    revoked_block: int | None
    revoked_tx: str | None
    owner_changed_block: int | None
    dataset_retired_block: int | None
    terms: GrantTerms | None = None  # from the latest GrantIssued (all zero: no terms)

    @property
    def revoked(self) -> bool:
        """Revoked by the owner or an operator, or renounced by the grantee."""
        return self.revoked_block is not None

    def status_at(self, timestamp: int) -> GrantStatus:
        """The status a check at `timestamp` would give, with the contract's precedence."""
        return _grant_status(
            issued=True,
            registered=True,
            retired=self.dataset_retired_block is not None,
            revoked=self.revoked,
            owner_changed=self.owner_changed_block is not None,
            not_before=self.not_before,
            expires_at=self.expires_at,
            timestamp=timestamp,
        )


@dataclass(frozen=True, slots=True)
class GrantStateAt:
    """A grant as it stood at a chain position (a round's block, before the round's log).

    `issued` is the GrantIssued in force, `revocation` a GrantRevoked after it,
    `owner_change` the first deed transfer after it (grants do not survive one), all
    strictly before the position; `status` is what `authorizationStatus` returned there.
    """

    dataset_id: int
    grantee: str
    purpose: bytes
    block_number: int
    log_index: int | None
    timestamp: int
    status: GrantStatus
    issued: GrantEvent | None
    revocation: GrantEvent | None
    owner_change: DeedTransfer | None
    retired_block: int | None
    dataset_registered: bool

    @property
    def authorized(self) -> bool:
        """Whether the grant authorised at that position."""
        return self.status is GrantStatus.AUTHORIZED


@dataclass(frozen=True, slots=True)
class IndexedJob:
    """A JobCreated event and how many rounds the index has for the job."""

    job_id: int
    coordinator: str
    purpose: bytes
    datasets: tuple[int, ...]
    initial_model_digest: bytes
    spec_digest: bytes
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    timestamp: int
    rounds_committed: int


@dataclass(frozen=True, slots=True)
class IndexedRound:
    """A RoundCommitted event with the block it landed in."""

    job_id: int
    round: int
    parent_digest: bytes
    model_digest: bytes
    manifest_cid: str
    participants: tuple[int, ...]
    attestations_root: bytes
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class IndexedLargeRound:
    """A LargeRoundCommitted event: the round's participant count and hash chain, as committed."""

    job_id: int
    round: int
    participant_count: int
    participants_hash: bytes
    block_number: int
    log_index: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class RoundParticipant:
    """A dataset of a committed round, with where the contract checked its grant.

    For a large round that is its RoundParticipantsAdded batch; otherwise the RoundCommitted itself.
    """

    dataset_id: int
    block_number: int
    log_index: int


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """Any decoded event of the three contracts (including ones without a dedicated table)."""

    contract: str
    event: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Reported after each block range is committed."""

    from_block: int
    to_block: int
    head: int
    events: int


# ---------------------------------------------------------------------------------------
# helpers


def _id_text(value: int) -> str:
    return f"0x{value:064x}"


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return _hex(bytes(value))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # JSON readers lose integers past 2**53: keep large ones exact as hex.
        return value if abs(value) < 2**53 else _id_text(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _int_of(value: Any) -> int:
    """An integer as `_jsonable` stored it (a number, or 0x-hex past 2**53)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _terms_of(values: Sequence[Any]) -> GrantTerms | None:
    """Terms from their four stored integers (None when not recorded)."""
    if any(value is None for value in values):
        return None
    return GrantTerms.from_chain(*(int(value) for value in values))


def _grant_status(
    *,
    issued: bool,
    registered: bool,
    retired: bool,
    revoked: bool,
    owner_changed: bool,
    not_before: int | None,
    expires_at: int | None,
    timestamp: int,
) -> GrantStatus:
    # Same order as UsageGrants._status, so the index and the contract agree on the reason.
    if not issued:
        return GrantStatus.NO_GRANT if registered else GrantStatus.UNKNOWN_DATASET
    if retired:
        return GrantStatus.DATASET_RETIRED
    if revoked:
        return GrantStatus.REVOKED
    if owner_changed:
        return GrantStatus.OWNER_CHANGED
    assert not_before is not None and expires_at is not None
    if timestamp < not_before:
        return GrantStatus.NOT_YET_VALID
    if timestamp > expires_at:
        return GrantStatus.EXPIRED
    return GrantStatus.AUTHORIZED


@dataclass(frozen=True, slots=True)
class _Header:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class _EventSpec:
    contract: str
    name: str
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _DecodedLog:
    spec: _EventSpec
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str


class _RangeMoved(Exception):
    """The chain changed while a range was read (internal: the range is retried)."""


class _Rows:
    """A range's INSERTs, sent with one `executemany` per table and statement.

    Each table gets its rows in the order they were given (a run of one statement is one
    `executemany`), so the file is the one row-by-row inserts write; tables are independent
    (no triggers or foreign keys). Any other statement (a large round's abort deletes rows)
    first sends everything queued, so it sees every row before it.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._queued: dict[str, list[tuple[str, list[Sequence[Any]]]]] = {}

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        self.executemany(sql, [params])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not sql.startswith("INSERT INTO "):
            self.flush()
            self.db.executemany(sql, rows)
            return
        runs = self._queued.setdefault(sql.split()[2], [])
        if runs and runs[-1][0] == sql:
            runs[-1][1].extend(rows)
        else:
            runs.append((sql, list(rows)))

    def flush(self) -> None:
        for runs in self._queued.values():
            for sql, rows in runs:
                self.db.executemany(sql, rows)
        self._queued.clear()


class _NoRawAnswer(Exception):
    """A raw JSON-RPC answer was an error or malformed (internal: web3 is asked instead)."""


def _header_of(block: Any) -> _Header | None:
    """A block header from a raw `eth_getBlockByNumber` result (None: no such block, or malformed)."""
    if not isinstance(block, Mapping):
        return None
    try:
        return _Header(
            number=_as_int(block["number"]),
            hash=_hex(_as_bytes(block["hash"])),
            parent_hash=_hex(_as_bytes(block["parentHash"])),
            timestamp=_as_int(block["timestamp"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def load_event_specs(artifacts_dir: Path = ARTIFACTS_DIR) -> dict[str, dict[bytes, _EventSpec]]:
    """Event decoders by contract name and topic0, from the shipped ABIs."""
    specs: dict[str, dict[bytes, _EventSpec]] = {}
    for name in CONTRACT_NAMES:
        path = artifacts_dir / f"{name}.json"
        try:
            abi = json.loads(path.read_text())["abi"]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigurationError(f"cannot read the ABI of {name} from {path}: {error}") from error
        by_topic: dict[bytes, _EventSpec] = {}
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous"):
                continue
            inputs = entry["inputs"]
            by_topic[bytes(event_abi_to_log_topic(entry))] = _EventSpec(
                contract=name,
                name=entry["name"],
                indexed=tuple((i["name"], i["type"]) for i in inputs if i["indexed"]),
                data=tuple((i["name"], i["type"]) for i in inputs if not i["indexed"]),
            )
        specs[name] = by_topic
    return specs


def _normalise(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.endswith("[]"):
        return [_normalise(abi_type[:-2], item) for item in value]
    if isinstance(value, bytes):
        return bytes(value)
    return value


@lru_cache(maxsize=65536)
def _checksummed(address: str) -> str:
    """`to_checksum_address`, remembered: owners and grantees recur in thousands of logs."""
    return str(to_checksum_address(address))


class _NotCanonical(Exception):
    """A word the fast decoder does not take as is (eth_abi then decodes, or refuses, it)."""


_ZERO_PAD = bytes(32)
_WordDecoder = Callable[[bytes], Any]


def _word_decoder(abi_type: str) -> _WordDecoder | None:
    """A decoder of one 32-byte word of a static type giving what `_normalise(eth_abi)` gives, or None.

    It refuses (raises `_NotCanonical`) every word eth_abi would refuse or read differently
    (non-zero padding, a value wider than its type), so the slow path decides those.
    """
    if abi_type == "address":

        def address(word: bytes) -> str:
            if word[:12] != _ZERO_PAD[:12]:
                raise _NotCanonical
            return _checksummed("0x" + word[12:].hex())

        return address
    if abi_type == "bool":

        def boolean(word: bytes) -> bool:
            value = int.from_bytes(word, "big")
            if value > 1:
                raise _NotCanonical
            return value == 1

        return boolean
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        bits = int(abi_type[4:])

        def unsigned(word: bytes) -> int:
            value = int.from_bytes(word, "big")
            if value >> bits:
                raise _NotCanonical
            return value

        return unsigned
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        size = int(abi_type[5:])

        def fixed_bytes(word: bytes) -> bytes:
            if word[size:] != _ZERO_PAD[size:]:
                raise _NotCanonical
            return word[:size]

        return fixed_bytes
    return None


@dataclass(frozen=True, slots=True)
class _FastDecoder:
    """Word decoders for an event's topics and, when every data field is static, its data."""

    topics: tuple[_WordDecoder, ...] | None
    data: tuple[_WordDecoder, ...] | None


def _fast_decoder(spec: _EventSpec) -> _FastDecoder:
    topics = [_word_decoder(abi_type) for _, abi_type in spec.indexed]
    data = [_word_decoder(abi_type) for _, abi_type in spec.data]
    return _FastDecoder(
        topics=None if None in topics else tuple(t for t in topics if t is not None),
        data=None if None in data else tuple(d for d in data if d is not None),
    )


def _as_bytes(value: Any) -> bytes:
    """A log field as bytes, from a JSON-RPC hex string or web3's HexBytes."""
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
    return bytes(value)


def _as_int(value: Any) -> int:
    """A quantity from a JSON-RPC hex string or web3's int."""
    return int(value, 16) if isinstance(value, str) else int(value)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    block_hash TEXT NOT NULL, contract TEXT NOT NULL, event TEXT NOT NULL, args TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index));
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id TEXT NOT NULL, registrant TEXT NOT NULL, parent_id TEXT NOT NULL, uri TEXT NOT NULL,
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    timestamp INTEGER NOT NULL, PRIMARY KEY (dataset_id));
CREATE TABLE IF NOT EXISTS dataset_retirements (
    dataset_id TEXT NOT NULL, block_number INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, PRIMARY KEY (dataset_id));
CREATE TABLE IF NOT EXISTS deed_transfers (
    dataset_id TEXT NOT NULL, from_address TEXT NOT NULL, to_address TEXT NOT NULL,
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    timestamp INTEGER NOT NULL, PRIMARY KEY (block_number, log_index));
CREATE INDEX IF NOT EXISTS deed_transfers_by_dataset ON deed_transfers (dataset_id, block_number, log_index);
CREATE TABLE IF NOT EXISTS grant_events (
    dataset_id TEXT NOT NULL, grantee TEXT NOT NULL, purpose TEXT NOT NULL, kind TEXT NOT NULL,
    not_before INTEGER, expires_at INTEGER, block_number INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, timestamp INTEGER NOT NULL,
    epsilon_hundredths INTEGER, delta_neg_exponent INTEGER, min_participants INTEGER, max_rounds INTEGER,
    PRIMARY KEY (block_number, log_index));
CREATE INDEX IF NOT EXISTS grant_events_by_key
    ON grant_events (dataset_id, grantee, purpose, block_number, log_index);
CREATE INDEX IF NOT EXISTS grant_events_by_grantee ON grant_events (grantee);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY, coordinator TEXT NOT NULL, purpose TEXT NOT NULL, datasets TEXT NOT NULL,
    initial_model_digest TEXT NOT NULL, spec_digest TEXT NOT NULL, block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job_datasets (
    job_id INTEGER NOT NULL, position INTEGER NOT NULL, dataset_id TEXT NOT NULL,
    block_number INTEGER NOT NULL, PRIMARY KEY (job_id, position));
CREATE TABLE IF NOT EXISTS rounds (
    job_id INTEGER NOT NULL, round INTEGER NOT NULL, parent_digest TEXT NOT NULL, model_digest TEXT NOT NULL,
    manifest_cid TEXT NOT NULL, participants TEXT NOT NULL, attestations_root TEXT NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, timestamp INTEGER NOT NULL, PRIMARY KEY (job_id, round));
CREATE INDEX IF NOT EXISTS rounds_by_model ON rounds (model_digest);
CREATE TABLE IF NOT EXISTS round_participants (
    job_id INTEGER NOT NULL, round INTEGER NOT NULL, dataset_id TEXT NOT NULL, block_number INTEGER NOT NULL,
    PRIMARY KEY (job_id, round, dataset_id));
CREATE INDEX IF NOT EXISTS round_participants_by_dataset ON round_participants (dataset_id);
CREATE TABLE IF NOT EXISTS batch_participants (
    job_id INTEGER NOT NULL, round INTEGER NOT NULL, dataset_id TEXT NOT NULL, block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL, timestamp INTEGER NOT NULL, PRIMARY KEY (job_id, round, dataset_id));
CREATE TABLE IF NOT EXISTS large_rounds (
    job_id INTEGER NOT NULL, round INTEGER NOT NULL, participant_count INTEGER NOT NULL,
    participants_hash TEXT NOT NULL, block_number INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, PRIMARY KEY (job_id, round));
"""

# Every table whose rows belong to a block: a rewind deletes from each above the fork.
_BLOCK_TABLES = (
    "events",
    "datasets",
    "dataset_retirements",
    "deed_transfers",
    "grant_events",
    "jobs",
    "job_datasets",
    "rounds",
    "round_participants",
    "batch_participants",
    "large_rounds",
    "blocks",
)


class EventIndex:
    """SQLite index of the DatasetRegistry, UsageGrants and TrainingLedger events.

    `EventIndex(settings, client)` with a `LedgerClient`, or
    `EventIndex(path, w3=w3, deployment=deployment)` with plain parts. One index file
    belongs to one deployment: opening it for another (chain id, addresses or deployment
    block differ) starts it afresh, since the index is only a cache of the chain.
    """

    def __init__(
        self,
        settings_or_path: Settings | str | Path,
        client: ChainSource | None = None,
        *,
        w3: Web3 | None = None,
        deployment: DeploymentLike | None = None,
        confirmations: int = 0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        artifacts_dir: Path = ARTIFACTS_DIR,
    ) -> None:
        if client is not None:
            w3 = w3 or client.w3
            deployment = deployment or client.deployment
        if w3 is None or deployment is None:
            raise ConfigurationError("EventIndex needs a client, or both w3= and deployment=")
        if chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be at least 1; got {chunk_size}")
        if confirmations < 0:
            raise ConfigurationError(f"confirmations must be 0 or more; got {confirmations}")
        self.path = (
            settings_or_path.index_path if isinstance(settings_or_path, Settings) else Path(settings_or_path)
        )
        self.w3 = w3
        self.chain_id = int(deployment.chain_id)
        self.deployed_block = int(deployment.deployed_block)
        missing = [name for name in CONTRACT_NAMES if name not in deployment.addresses]
        if missing:
            raise ConfigurationError(f"deployment has no address for {', '.join(missing)}")
        self.addresses = {name: to_checksum_address(deployment.addresses[name]) for name in CONTRACT_NAMES}
        self.confirmations = confirmations
        self.chunk_size = chunk_size
        specs = load_event_specs(artifacts_dir)
        self._specs = {self.addresses[name].lower(): specs[name] for name in CONTRACT_NAMES}
        self._fast = {spec: _fast_decoder(spec) for by_topic in specs.values() for spec in by_topic.values()}
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; a power cut may lose the last range,
        # which the next sync fetches again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._create_schema()
        self._bind_deployment()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Closes the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two syncing processes serialise
        # instead of failing at commit time.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._lock:
            self._execute_schema()
            with self._write() as db:
                # Read inside the write transaction: a second process opening the same file
                # waits here and then sees the version the first one migrated to.
                version = self._meta("schema_version")
                if version is None or version == SCHEMA_VERSION:
                    return
                if version == "1":
                    self._migrate_from_1(db)
                else:
                    # A layout this code does not know (a newer sov wrote it): the index is a
                    # cache, so drop it; `_bind_deployment` then starts it afresh.
                    log.warning(
                        "event index %s has schema version %s (this sov writes %s); rebuilding it",
                        self.path,
                        version,
                        SCHEMA_VERSION,
                    )
                    for table in _BLOCK_TABLES:
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    db.execute("DELETE FROM meta")
                    self._execute_schema()
                    return
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

    def _execute_schema(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def _migrate_from_1(self, db: sqlite3.Connection) -> None:
        """Version 1 -> 2: grant terms and large rounds, filled from the `events` rows already held.

        Every decoded log was kept in `events` with all its arguments, so the new columns and
        table are derived without reading the chain again (and the cursor stays where it was).
        """
        columns = {row[1] for row in db.execute("PRAGMA table_info(grant_events)")}
        for column in TERM_COLUMNS:
            if column not in columns:
                db.execute(f"ALTER TABLE grant_events ADD COLUMN {column} INTEGER")
        issued = db.execute(
            "SELECT block_number, log_index, args FROM events "
            "WHERE contract = 'UsageGrants' AND event = 'GrantIssued'"
        ).fetchall()
        for block_number, log_index, args in issued:
            values = [json.loads(args).get(name) for name in TERM_FIELDS]
            if any(value is None for value in values):
                continue  # not recorded: the terms stay unknown (NULL), never guessed as none
            db.execute(
                "UPDATE grant_events SET epsilon_hundredths = ?, delta_neg_exponent = ?, "
                "min_participants = ?, max_rounds = ? WHERE block_number = ? AND log_index = ?",
                (*values, block_number, log_index),
            )
        committed = db.execute(
            "SELECT block_number, log_index, tx_hash, args FROM events "
            "WHERE contract = 'TrainingLedger' AND event = 'LargeRoundCommitted'"
        ).fetchall()
        for block_number, log_index, tx_hash, args in committed:
            a = json.loads(args)
            db.execute(
                "INSERT OR REPLACE INTO large_rounds VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _int_of(a["jobId"]),
                    _int_of(a["round"]),
                    _int_of(a["participantCount"]),
                    a["participantsHash"],
                    block_number,
                    log_index,
                    tx_hash,
                ),
            )
        log.info("event index %s migrated from schema version 1 to %s", self.path, SCHEMA_VERSION)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _binding(self) -> dict[str, str]:
        return {
            "schema_version": SCHEMA_VERSION,
            "chain_id": str(self.chain_id),
            "addresses": json.dumps(self.addresses, sort_keys=True),
            "deployed_block": str(self.deployed_block),
        }

    def _bind_deployment(self) -> None:
        with self._write() as db:
            stored = {key: self._meta(key) for key in self._binding()}
            if stored == self._binding() and self._meta("cursor") is not None:
                return
            if any(value is not None for value in stored.values()):
                log.warning("event index %s belonged to another deployment; starting it afresh", self.path)
            self._clear(db)
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(self._binding().items())
            )

    def _clear(self, db: sqlite3.Connection) -> None:
        for table in _BLOCK_TABLES:
            db.execute(f"DELETE FROM {table}")
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", (str(self.deployed_block - 1),)
        )

    def synced_block(self) -> int:
        """The last block whose events are all in the index (deployment block - 1 when empty)."""
        with self._lock:
            value = self._meta("cursor")
        assert value is not None
        return int(value)

    # ------------------------------------------------------------------ chain access

    def _rpc_url(self) -> str:
        return str(
            getattr(self.w3.provider, "endpoint_uri", None) or getattr(self.w3.provider, "ipc_path", "?")
        )

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except OSError as error:
            raise UnreachableError(f"chain RPC {self._rpc_url()} did not answer {what}: {error}") from error

    def _raw(self, method: str, params: list[Any], what: str) -> Any:
        """The `result` of one JSON-RPC request sent straight to the provider (no web3 formatters).

        Raises `_NoRawAnswer` for an error answer or a malformed one: the caller then asks
        through web3, which raises for it what it always did.
        """
        response = self._call(what, lambda: self.w3.provider.make_request(RPCEndpoint(method), params))
        if not isinstance(response, Mapping) or "error" in response or "result" not in response:
            raise _NoRawAnswer
        return response["result"]

    def _headers(self, numbers: Sequence[int]) -> dict[int, _Header | None]:
        """`_header` of each block, in one JSON-RPC batch when the provider posts bodies."""
        found: dict[int, _Header | None] = {}
        post = getattr(self.w3.provider, "post", None)
        if post is not None and len(numbers) > 1:
            body = [
                {"jsonrpc": "2.0", "method": "eth_getBlockByNumber", "params": [hex(n), False], "id": i}
                for i, n in enumerate(numbers)
            ]
            try:
                answers = json.loads(
                    self._call("eth_getBlockByNumber (batch)", lambda: post(json.dumps(body).encode()))
                )
            except ValueError:
                answers = None
            if isinstance(answers, list):
                by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
                for i, number in enumerate(numbers):
                    answer = by_id.get(i)
                    if isinstance(answer, dict) and "error" not in answer and "result" in answer:
                        header = _header_of(answer["result"])
                        if header is not None or answer["result"] is None:
                            found[number] = header
        for number in numbers:
            if number not in found:
                found[number] = self._header(number)
        return found

    def _header(self, number: int) -> _Header | None:
        try:
            block = self._raw("eth_getBlockByNumber", [hex(number), False], f"eth_getBlockByNumber({number})")
        except _NoRawAnswer:
            return self._web3_header(number)
        header = _header_of(block)
        if header is None and block is not None:
            return self._web3_header(number)
        return header

    def _web3_header(self, number: int) -> _Header | None:
        try:
            block = self._call(f"eth_getBlockByNumber({number})", lambda: self.w3.eth.get_block(number))
        except BlockNotFound:
            return None
        if block is None:
            return None
        return _Header(
            number=int(block["number"]),
            hash=_hex(block["hash"]),
            parent_hash=_hex(block["parentHash"]),
            timestamp=int(block["timestamp"]),
        )

    def _head(self) -> int:
        return int(self._call("eth_blockNumber", lambda: self.w3.eth.block_number))

    def _get_logs(self, start: int, end: int) -> list[Any]:
        # Straight to the provider: web3's result formatters (AttributeDict, HexBytes, a checksum
        # per log) cost more than decoding the logs; `_read_range` reads either form.
        addresses = list(self.addresses.values())
        raw: Any = {"address": addresses, "fromBlock": hex(start), "toBlock": hex(end)}
        try:
            logs = self._raw("eth_getLogs", [raw], f"eth_getLogs({start}..{end})")
        except _NoRawAnswer:
            logs = None
        if isinstance(logs, list):
            return logs
        params: Any = {"address": addresses, "fromBlock": start, "toBlock": end}
        return list(self._call(f"eth_getLogs({start}..{end})", lambda: self.w3.eth.get_logs(params)))

    # ------------------------------------------------------------------ sync

    def sync(
        self,
        to_block: int | None = None,
        *,
        max_ranges: int | None = None,
        on_range: Callable[[SyncProgress], None] | None = None,
    ) -> int:
        """Indexes new events up to `to_block` (default: head - confirmations); returns how many.

        Rewinds first if the chain reorganised below the synced block. `max_ranges` stops
        after that many committed block ranges (the next call resumes), `on_range` is called
        after each one (progress bars).
        """
        total = 0
        ranges = 0
        retries = 0
        while max_ranges is None or ranges < max_ranges:
            self._rewind_if_reorged()
            cursor = self.synced_block()
            head = self._head() - self.confirmations
            target = head if to_block is None else min(head, to_block)
            if cursor >= target:
                break
            start = cursor + 1
            end = min(start + self.chunk_size - 1, target)
            try:
                decoded, headers = self._read_range(start, end, cursor)
            except _RangeMoved as moved:
                retries += 1
                log.info("chain moved while reading blocks %d..%d (%s); retrying", start, end, moved)
                if retries > MAX_RANGE_RETRIES:
                    raise ChainMovedError(
                        f"chain at {self._rpc_url()} kept reorganising while blocks {start}..{end} were read "
                        f"({retries} attempts); sync again later"
                    ) from None
                continue
            written = self._store_range(cursor, end, decoded, headers)
            if written is None:
                # Another process advanced the cursor meanwhile; continue from its position.
                continue
            retries = 0
            total += written
            ranges += 1
            if on_range is not None:
                on_range(SyncProgress(from_block=start, to_block=end, head=target, events=written))
        return total

    def rebuild(self) -> int:
        """Drops every indexed row and re-syncs from the deployment block; returns the event count."""
        with self._write() as db:
            self._clear(db)
        return self.sync()

    def _read_range(self, start: int, end: int, cursor: int) -> tuple[list[_DecodedLog], dict[int, _Header]]:
        try:
            raw_logs = self._get_logs(start, end)
        except UnreachableError:
            raise
        except Exception as error:
            # Providers cap eth_getLogs by range or result size: halve the range and retry.
            if end > start:
                self.chunk_size = max(1, (end - start + 1) // 2)
                raise _RangeMoved(
                    f"eth_getLogs refused {start}..{end} ({error}); range now {self.chunk_size}"
                ) from error
            raise EventIndexError(
                f"eth_getLogs({start}..{end}) failed at {self._rpc_url()}: {error}"
            ) from error
        decoded: list[_DecodedLog] = []
        for raw in raw_logs:
            if raw.get("removed"):
                continue
            spec = self._specs.get(str(raw["address"]).lower(), {}).get(
                _as_bytes(raw["topics"][0]) if raw["topics"] else b""
            )
            if spec is None:
                continue
            decoded.append(self._decode(spec, raw))
        headers: dict[int, _Header] = {}
        numbers = sorted({entry.block_number for entry in decoded} | {start, end})
        for number, header in self._headers(numbers).items():
            if header is None:
                raise _RangeMoved(f"block {number} disappeared")
            headers[number] = header
        for entry in decoded:
            if headers[entry.block_number].hash != entry.block_hash:
                raise _RangeMoved(f"log in block {entry.block_number} is from block {entry.block_hash}")
        with self._lock:
            row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (cursor,)).fetchone()
        if row is not None and headers[start].parent_hash != row[0]:
            raise _RangeMoved(f"block {start} no longer follows the indexed block {cursor}")
        again = self._header(end)
        if again is None or again.hash != headers[end].hash:
            raise _RangeMoved(f"block {end} changed while the range was read")
        decoded.sort(key=lambda entry: (entry.block_number, entry.log_index))
        return decoded, headers

    def _decode(self, spec: _EventSpec, raw: Any) -> _DecodedLog:
        topics = [_as_bytes(topic) for topic in raw["topics"][1:]]
        data = _as_bytes(raw["data"])
        args = self._decode_fast(spec, topics, data)
        if args is None:
            args = {}
            for (name, abi_type), topic in zip(spec.indexed, topics, strict=True):
                args[name] = _normalise(abi_type, abi_decode([abi_type], topic)[0])
            values = abi_decode([abi_type for _, abi_type in spec.data], data)
            for (name, abi_type), value in zip(spec.data, values, strict=True):
                args[name] = _normalise(abi_type, value)
        return _DecodedLog(
            spec=spec,
            args=args,
            block_number=_as_int(raw["blockNumber"]),
            log_index=_as_int(raw["logIndex"]),
            tx_hash=_hex(_as_bytes(raw["transactionHash"])),
            block_hash=_hex(_as_bytes(raw["blockHash"])),
        )

    def _decode_fast(self, spec: _EventSpec, topics: list[bytes], data: bytes) -> dict[str, Any] | None:
        """The arguments of a log of static words, read word by word (None: leave it to eth_abi).

        The same values `_normalise(eth_abi.decode(...))` gives; anything unusual (a topic or
        data length that differs, a word eth_abi would refuse) goes the slow way, which decodes
        or refuses it as it always did. Dynamic data fields (strings, arrays) go to eth_abi.
        """
        fast = self._fast[spec]
        if fast.topics is None or len(topics) != len(fast.topics) or any(len(t) != 32 for t in topics):
            return None
        try:
            args = {
                name: decode(topic)
                for (name, _), decode, topic in zip(spec.indexed, fast.topics, topics, strict=True)
            }
            if fast.data is not None:
                if len(data) != 32 * len(fast.data):
                    return None
                for index, ((name, _), decode) in enumerate(zip(spec.data, fast.data, strict=True)):
                    args[name] = decode(data[32 * index : 32 * index + 32])
                return args
        except _NotCanonical:
            return None
        values = abi_decode([abi_type for _, abi_type in spec.data], data)
        for (name, abi_type), value in zip(spec.data, values, strict=True):
            args[name] = _normalise(abi_type, value)
        return args

    def _store_range(
        self, cursor: int, end: int, decoded: Sequence[_DecodedLog], headers: Mapping[int, _Header]
    ) -> int | None:
        with self._write() as db:
            if self._meta("cursor") != str(cursor):
                return None
            rows = _Rows(db)
            for entry in decoded:
                self._insert(rows, entry, headers[entry.block_number])
            rows.flush()
            keep = {entry.block_number for entry in decoded} | {end}
            db.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)",
                [(n, headers[n].hash, headers[n].timestamp) for n in sorted(keep)],
            )
            # Keep the hashes of event blocks and of the cursor block only: enough to detect a
            # reorg (all below a matching block is canonical) and independent of range sizes.
            db.execute(
                "DELETE FROM blocks WHERE number = ? "
                "AND NOT EXISTS (SELECT 1 FROM events WHERE block_number = ?)",
                (cursor, cursor),
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(end),))
        return len(decoded)

    def _insert(self, db: _Rows, entry: _DecodedLog, header: _Header) -> None:
        a = entry.args
        position = (entry.block_number, entry.log_index, entry.tx_hash)
        db.execute(
            "INSERT INTO events (block_number, log_index, tx_hash, block_hash, contract, event, args) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                *position[:3],
                entry.block_hash,
                entry.spec.contract,
                entry.spec.name,
                json.dumps({k: _jsonable(v) for k, v in a.items()}, sort_keys=True),
            ),
        )
        key = (entry.spec.contract, entry.spec.name)
        if key == ("DatasetRegistry", "DatasetRegistered"):
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _id_text(a["datasetId"]),
                    a["owner"],
                    _id_text(a["parentId"]),
                    a["uri"],
                    *position,
                    header.timestamp,
                ),
            )
        elif key == ("DatasetRegistry", "DatasetRetired"):
            db.execute(
                "INSERT INTO dataset_retirements VALUES (?, ?, ?, ?)", (_id_text(a["datasetId"]), *position)
            )
        elif key == ("DatasetRegistry", "Transfer"):
            db.execute(
                "INSERT INTO deed_transfers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_id_text(a["tokenId"]), a["from"], a["to"], *position, header.timestamp),
            )
        elif key == ("UsageGrants", "GrantIssued"):
            # Named columns: a migrated file has the terms columns last, whatever the DDL order.
            db.execute(
                "INSERT INTO grant_events (dataset_id, grantee, purpose, kind, not_before, expires_at, "
                "block_number, log_index, tx_hash, timestamp, " + ", ".join(TERM_COLUMNS) + ") "
                "VALUES (?, ?, ?, 'issued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _id_text(a["datasetId"]),
                    a["grantee"],
                    _hex(a["purpose"]),
                    a["notBefore"],
                    a["expiresAt"],
                    *position,
                    header.timestamp,
                    *(a[name] for name in TERM_FIELDS),
                ),
            )
        elif key == ("UsageGrants", "GrantRevoked"):
            db.execute(
                "INSERT INTO grant_events (dataset_id, grantee, purpose, kind, block_number, log_index, "
                "tx_hash, timestamp) VALUES (?, ?, ?, 'revoked', ?, ?, ?, ?)",
                (_id_text(a["datasetId"]), a["grantee"], _hex(a["purpose"]), *position, header.timestamp),
            )
        elif key == ("TrainingLedger", "JobCreated"):
            datasets = [_id_text(d) for d in a["datasets"]]
            db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    a["jobId"],
                    a["coordinator"],
                    _hex(a["purpose"]),
                    json.dumps(datasets),
                    _hex(a["initialModelDigest"]),
                    _hex(a["specDigest"]),
                    entry.block_number,
                    entry.block_hash,
                    entry.log_index,
                    entry.tx_hash,
                    header.timestamp,
                ),
            )
            db.executemany(
                "INSERT INTO job_datasets VALUES (?, ?, ?, ?)",
                [(a["jobId"], i, d, entry.block_number) for i, d in enumerate(datasets)],
            )
        elif key == ("TrainingLedger", "RoundCommitted"):
            participants = [_id_text(d) for d in a["participants"]]
            db.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    a["jobId"],
                    a["round"],
                    _hex(a["parentDigest"]),
                    _hex(a["modelDigest"]),
                    a["manifestCid"],
                    json.dumps(participants),
                    _hex(a["attestationsRoot"]),
                    entry.block_number,
                    entry.block_hash,
                    entry.log_index,
                    entry.tx_hash,
                    header.timestamp,
                ),
            )
            db.executemany(
                "INSERT INTO round_participants VALUES (?, ?, ?, ?)",
                [(a["jobId"], a["round"], d, entry.block_number) for d in participants],
            )
        elif key == ("TrainingLedger", "RoundParticipantsAdded"):
            # A large round's participants arrive in batches before its (empty-listed) RoundCommitted;
            # each batch's position is where the contract checked those grants.
            added = [_id_text(d) for d in a["participants"]]
            db.executemany(
                "INSERT INTO round_participants VALUES (?, ?, ?, ?)",
                [(a["jobId"], a["round"], d, entry.block_number) for d in added],
            )
            db.executemany(
                "INSERT INTO batch_participants VALUES (?, ?, ?, ?, ?, ?)",
                [(a["jobId"], a["round"], d, *position[:2], header.timestamp) for d in added],
            )
        elif key == ("TrainingLedger", "LargeRoundCommitted"):
            db.execute(
                "INSERT INTO large_rounds VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    a["jobId"],
                    a["round"],
                    a["participantCount"],
                    _hex(a["participantsHash"]),
                    *position,
                ),
            )
        elif key == ("TrainingLedger", "LargeRoundAborted"):
            for table in ("round_participants", "batch_participants"):
                db.execute(f"DELETE FROM {table} WHERE job_id = ? AND round = ?", (a["jobId"], a["round"]))

    # ------------------------------------------------------------------ reorgs

    def _rewind_if_reorged(self) -> int | None:
        """Rewinds to the highest stored block the chain still has; returns it, or None if no reorg."""
        with self._lock:
            stored = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC").fetchall()
        if not stored:
            return None
        number, expected = stored[0]
        header = self._header(int(number))
        if header is not None and header.hash == expected:
            return None
        fork = self.deployed_block - 1
        for number, expected in stored[1:]:
            header = self._header(int(number))
            if header is not None and header.hash == expected:
                fork = int(number)
                break
        self._rewind(fork)
        log.warning("chain reorganised: event index rewound to block %d", fork)
        return fork

    def _rewind(self, fork: int) -> None:
        with self._write() as db:
            # An abort deleted rows of batches below it; if the abort itself is rewound, the
            # batches are the chain's again and their rows are rebuilt from the events kept.
            aborted = {
                (_int_of(a["jobId"]), _int_of(a["round"]))
                for (args,) in db.execute(
                    "SELECT args FROM events WHERE contract = 'TrainingLedger' "
                    "AND event = 'LargeRoundAborted' AND block_number > ?",
                    (fork,),
                )
                for a in [json.loads(args)]
            }
            for table in _BLOCK_TABLES:
                column = "number" if table == "blocks" else "block_number"
                db.execute(f"DELETE FROM {table} WHERE {column} > ?", (fork,))
            for job_id, round_number in sorted(aborted):
                self._replay_batches(db, job_id, round_number)
            db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(fork),))

    def _replay_batches(self, db: sqlite3.Connection, job_id: int, round_number: int) -> None:
        """Rebuilds a large round's batch rows from its indexed events (those since its last abort)."""
        for table in ("round_participants", "batch_participants"):
            db.execute(f"DELETE FROM {table} WHERE job_id = ? AND round = ?", (job_id, round_number))
        added: list[tuple[str, int, int, int]] = []
        rows = db.execute(
            "SELECT e.event, e.args, e.block_number, e.log_index, b.timestamp FROM events e "
            "JOIN blocks b ON b.number = e.block_number WHERE e.contract = 'TrainingLedger' "
            "AND e.event IN ('RoundParticipantsAdded', 'LargeRoundAborted') "
            "ORDER BY e.block_number, e.log_index"
        ).fetchall()
        for event, args, block_number, log_index, timestamp in rows:
            a = json.loads(args)
            if (_int_of(a["jobId"]), _int_of(a["round"])) != (job_id, round_number):
                continue
            if event == "LargeRoundAborted":
                added = []
            else:
                added += [
                    (_id_text(_int_of(d)), block_number, log_index, timestamp) for d in a["participants"]
                ]
        db.executemany(
            "INSERT INTO round_participants VALUES (?, ?, ?, ?)",
            [(job_id, round_number, d, block) for d, block, _, _ in added],
        )
        db.executemany(
            "INSERT INTO batch_participants VALUES (?, ?, ?, ?, ?, ?)",
            [(job_id, round_number, *row) for row in added],
        )

    # ------------------------------------------------------------------ queries

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def block_hash(self, number: int) -> str | None:
        """The stored hash of block `number` (blocks with events and range ends only)."""
        rows = self._rows("SELECT hash FROM blocks WHERE number = ?", (number,))
        return None if not rows else str(rows[0]["hash"])

    def block_timestamp(self, number: int) -> int:
        """The timestamp of block `number`: stored for blocks with events, else read from the chain."""
        rows = self._rows("SELECT timestamp FROM blocks WHERE number = ?", (number,))
        if rows:
            return int(rows[0]["timestamp"])
        header = self._header(number)
        if header is None:
            raise NotIndexedError(
                f"block {number} does not exist on chain {self.chain_id} ({self._rpc_url()})"
            )
        return header.timestamp

    def events(self, contract: str | None = None, event: str | None = None) -> list[IndexedEvent]:
        """Every decoded event (optionally of one contract and/or event name), in chain order."""
        sql = "SELECT * FROM events WHERE (? IS NULL OR contract = ?) AND (? IS NULL OR event = ?)"
        rows = self._rows(sql + " ORDER BY block_number, log_index", (contract, contract, event, event))
        return [
            IndexedEvent(
                contract=r["contract"],
                event=r["event"],
                args=json.loads(r["args"]),
                block_number=r["block_number"],
                log_index=r["log_index"],
                tx_hash=r["tx_hash"],
                block_hash=r["block_hash"],
            )
            for r in rows
        ]

    @staticmethod
    def _transfer(r: Mapping[str, Any]) -> DeedTransfer:
        return DeedTransfer(
            dataset_id=int(r["dataset_id"], 16),
            from_address=r["from_address"],
            to_address=r["to_address"],
            block_number=r["block_number"],
            log_index=r["log_index"],
            tx_hash=r["tx_hash"],
            timestamp=r["timestamp"],
        )

    def _datasets(self, dataset_id: int | None) -> list[IndexedDataset]:
        key = None if dataset_id is None else _id_text(dataset_id)
        rows = self._rows(
            "SELECT d.*, r.block_number AS retired_block, r.tx_hash AS retired_tx FROM datasets d "
            "LEFT JOIN dataset_retirements r ON r.dataset_id = d.dataset_id "
            "WHERE (? IS NULL OR d.dataset_id = ?) ORDER BY d.block_number, d.log_index",
            (key, key),
        )
        transfers: dict[str, list[DeedTransfer]] = {}
        for t in self._rows(
            "SELECT * FROM deed_transfers WHERE (? IS NULL OR dataset_id = ?) "
            "ORDER BY block_number, log_index",
            (key, key),
        ):
            transfers.setdefault(t["dataset_id"], []).append(self._transfer(t))
        result = []
        for r in rows:
            history = tuple(transfers.get(r["dataset_id"], ()))
            owner = history[-1].to_address if history else r["registrant"]
            result.append(
                IndexedDataset(
                    dataset_id=int(r["dataset_id"], 16),
                    registrant=r["registrant"],
                    owner=owner,
                    parent_id=int(r["parent_id"], 16),
                    uri=r["uri"],
                    block_number=r["block_number"],
                    log_index=r["log_index"],
                    tx_hash=r["tx_hash"],
                    timestamp=r["timestamp"],
                    epoch=sum(
                        1 for t in history if t.from_address != ZERO_ADDRESS and t.to_address != ZERO_ADDRESS
                    ),
                    retired_block=r["retired_block"],
                    retired_tx=r["retired_tx"],
                    transfers=history,
                )
            )
        return result

    def datasets(self) -> list[IndexedDataset]:
        """Every registered dataset, in registration order."""
        return self._datasets(None)

    def dataset(self, dataset_id: int) -> IndexedDataset:
        """One dataset; raises `NotIndexedError` when the index has not seen it registered."""
        found = self._datasets(dataset_id)
        if not found:
            raise NotIndexedError(
                f"dataset {_id_text(dataset_id)} is not registered as of block {self.synced_block()} "
                f"(sync the index if it was registered since)"
            )
        return found[0]

    def owner_at(self, dataset_id: int, block_number: int, log_index: int | None = None) -> str | None:
        """Who held the deed just before (block_number, log_index) (end of block when None)."""
        rows = self._rows(
            "SELECT to_address FROM deed_transfers WHERE dataset_id = ? AND "
            + _before_clause()
            + " ORDER BY block_number DESC, log_index DESC LIMIT 1",
            (_id_text(dataset_id), *_before_params(block_number, log_index)),
        )
        if not rows or rows[0]["to_address"] == ZERO_ADDRESS:
            return None
        return str(rows[0]["to_address"])

    @staticmethod
    def _grant_event(r: Mapping[str, Any]) -> GrantEvent:
        return GrantEvent(
            dataset_id=int(r["dataset_id"], 16),
            grantee=r["grantee"],
            purpose=_unhex(r["purpose"]),
            kind=r["kind"],
            not_before=r["not_before"],
            expires_at=r["expires_at"],
            block_number=r["block_number"],
            log_index=r["log_index"],
            tx_hash=r["tx_hash"],
            timestamp=r["timestamp"],
            terms=_terms_of([r[column] for column in TERM_COLUMNS]) if r["kind"] == "issued" else None,
        )

    def grant_history(self, dataset_id: int, grantee: str, purpose: bytes) -> list[GrantEvent]:
        """Every GrantIssued / GrantRevoked for the key, in chain order."""
        rows = self._rows(
            "SELECT * FROM grant_events WHERE dataset_id = ? AND grantee = ? AND purpose = ? "
            "ORDER BY block_number, log_index",
            (_id_text(dataset_id), to_checksum_address(grantee), _hex(purpose)),
        )
        return [self._grant_event(r) for r in rows]

    def grants(self, dataset_id: int | None = None, grantee: str | None = None) -> list[IndexedGrant]:
        """The current grant of every key ever issued (optionally filtered), and what ended it if anything."""
        ds = None if dataset_id is None else _id_text(dataset_id)
        who = None if grantee is None else to_checksum_address(grantee)
        rows = self._rows(
            "SELECT * FROM grant_events WHERE (? IS NULL OR dataset_id = ?) AND (? IS NULL OR grantee = ?) "
            "ORDER BY block_number, log_index",
            (ds, ds, who, who),
        )
        latest: dict[tuple[str, str, str], GrantEvent] = {}
        revoked: dict[tuple[str, str, str], GrantEvent] = {}
        for r in rows:
            key = (r["dataset_id"], r["grantee"], r["purpose"])
            event = self._grant_event(r)
            if event.kind == "issued":
                latest[key] = event
                revoked.pop(key, None)
            elif key in latest and key not in revoked:
                revoked[key] = event
        datasets = {d.dataset_id: d for d in (self._datasets(dataset_id) if latest else [])}
        result = []
        for key, issued in latest.items():
            dataset = datasets.get(issued.dataset_id)
            transfers = dataset.transfers if dataset is not None else ()
            at = (issued.block_number, issued.log_index)
            later = [
                t
                for t in transfers
                if t.from_address != ZERO_ADDRESS
                and t.to_address != ZERO_ADDRESS
                and (t.block_number, t.log_index) > at
            ]
            epoch = sum(
                1
                for t in transfers
                if t.from_address != ZERO_ADDRESS
                and t.to_address != ZERO_ADDRESS
                and (t.block_number, t.log_index) < at
            )
            revocation = revoked.get(key)
            result.append(
                IndexedGrant(
                    dataset_id=issued.dataset_id,
                    grantee=issued.grantee,
                    purpose=issued.purpose,
                    not_before=issued.not_before or 0,
                    expires_at=issued.expires_at or 0,
                    issued_block=issued.block_number,
                    issued_tx=issued.tx_hash,
                    epoch=epoch,
                    revoked_block=None if revocation is None else revocation.block_number,
                    revoked_tx=None if revocation is None else revocation.tx_hash,
                    owner_changed_block=later[0].block_number if later else None,
                    dataset_retired_block=None if dataset is None else dataset.retired_block,
                    terms=issued.terms,
                )
            )
        result.sort(key=lambda g: (g.dataset_id, g.grantee, g.purpose))
        return result

    def grant_state_at(
        self,
        dataset_id: int,
        grantee: str,
        purpose: bytes,
        block_number: int,
        log_index: int | None = None,
        *,
        timestamp: int | None = None,
    ) -> GrantStateAt:
        """The grant as it stood just before (block_number, log_index), from the indexed history.

        With `log_index=None` the whole block counts (the state after it). For a round pass
        the round's block and log index: the contract checked authorisation when the
        commitment executed, after every earlier transaction of the block. `timestamp`
        defaults to the block's timestamp (what `block.timestamp` was for the check).
        """
        if block_number > self.synced_block():
            raise NotIndexedError(
                f"block {block_number} is past the index's synced block {self.synced_block()}; sync first"
            )
        ds = _id_text(dataset_id)
        who = to_checksum_address(grantee)
        before = _before_clause()
        params = _before_params(block_number, log_index)
        registered = bool(
            self._rows("SELECT 1 FROM datasets WHERE dataset_id = ? AND " + before, (ds, *params))
        )
        retired_rows = self._rows(
            "SELECT block_number FROM dataset_retirements WHERE dataset_id = ? AND " + before, (ds, *params)
        )
        events = [
            self._grant_event(r)
            for r in self._rows(
                "SELECT * FROM grant_events WHERE dataset_id = ? AND grantee = ? AND purpose = ? AND "
                + before
                + " ORDER BY block_number, log_index",
                (ds, who, _hex(purpose), *params),
            )
        ]
        issued = next((e for e in reversed(events) if e.kind == "issued"), None)
        revocation = None
        owner_change = None
        if issued is not None:
            at = (issued.block_number, issued.log_index)
            revocation = next(
                (e for e in events if e.kind == "revoked" and (e.block_number, e.log_index) > at), None
            )
            transfers = self._rows(
                "SELECT * FROM deed_transfers WHERE dataset_id = ? "
                "AND from_address != ? AND to_address != ? AND "
                "(block_number > ? OR (block_number = ? AND log_index > ?)) AND "
                + before
                + " ORDER BY block_number, log_index LIMIT 1",
                (ds, ZERO_ADDRESS, ZERO_ADDRESS, at[0], at[0], at[1], *params),
            )
            owner_change = self._transfer(transfers[0]) if transfers else None
        when = self.block_timestamp(block_number) if timestamp is None else timestamp
        status = _grant_status(
            issued=issued is not None,
            registered=registered,
            retired=bool(retired_rows),
            revoked=revocation is not None,
            owner_changed=owner_change is not None,
            not_before=None if issued is None else issued.not_before,
            expires_at=None if issued is None else issued.expires_at,
            timestamp=when,
        )
        return GrantStateAt(
            dataset_id=dataset_id,
            grantee=who,
            purpose=bytes(purpose),
            block_number=block_number,
            log_index=log_index,
            timestamp=when,
            status=status,
            issued=issued,
            revocation=revocation,
            owner_change=owner_change,
            retired_block=retired_rows[0]["block_number"] if retired_rows else None,
            dataset_registered=registered,
        )

    def _jobs(self, job_id: int | None) -> list[IndexedJob]:
        rows = self._rows(
            "SELECT j.*, (SELECT COUNT(*) FROM rounds r WHERE r.job_id = j.job_id) AS rounds_committed "
            "FROM jobs j WHERE (? IS NULL OR j.job_id = ?) ORDER BY j.job_id",
            (job_id, job_id),
        )
        return [
            IndexedJob(
                job_id=r["job_id"],
                coordinator=r["coordinator"],
                purpose=_unhex(r["purpose"]),
                datasets=tuple(int(d, 16) for d in json.loads(r["datasets"])),
                initial_model_digest=_unhex(r["initial_model_digest"]),
                spec_digest=_unhex(r["spec_digest"]),
                block_number=r["block_number"],
                block_hash=r["block_hash"],
                log_index=r["log_index"],
                tx_hash=r["tx_hash"],
                timestamp=r["timestamp"],
                rounds_committed=r["rounds_committed"],
            )
            for r in rows
        ]

    def jobs(self) -> list[IndexedJob]:
        """Every job, by id."""
        return self._jobs(None)

    def job(self, job_id: int) -> IndexedJob:
        """One job; raises `NotIndexedError` when the index has not seen it created."""
        found = self._jobs(job_id)
        if not found:
            raise NotIndexedError(
                f"job {job_id} is not in the index (synced to block {self.synced_block()}); "
                f"known jobs: {[j.job_id for j in self._jobs(None)] or 'none'}"
            )
        return found[0]

    @staticmethod
    def _round(r: Mapping[str, Any]) -> IndexedRound:
        return IndexedRound(
            job_id=r["job_id"],
            round=r["round"],
            parent_digest=_unhex(r["parent_digest"]),
            model_digest=_unhex(r["model_digest"]),
            manifest_cid=r["manifest_cid"],
            participants=tuple(int(d, 16) for d in json.loads(r["participants"])),
            attestations_root=_unhex(r["attestations_root"]),
            block_number=r["block_number"],
            block_hash=r["block_hash"],
            log_index=r["log_index"],
            tx_hash=r["tx_hash"],
            timestamp=r["timestamp"],
        )

    def rounds(self, job_id: int) -> list[IndexedRound]:
        """The committed rounds of a job, by round number."""
        rows = self._rows("SELECT * FROM rounds WHERE job_id = ? ORDER BY round", (job_id,))
        return [self._round(r) for r in rows]

    def rounds_using_dataset(self, dataset_id: int) -> list[IndexedRound]:
        """Every committed round (of any job) that had `dataset_id` among its participants, in chain order."""
        rows = self._rows(
            "SELECT r.* FROM rounds r JOIN round_participants p ON p.job_id = r.job_id AND p.round = r.round "
            "WHERE p.dataset_id = ? ORDER BY r.block_number, r.log_index",
            (_id_text(dataset_id),),
        )
        return [self._round(r) for r in rows]

    def batch_position(self, job_id: int, round_number: int, dataset_id: int) -> tuple[int, int, int] | None:
        """(block, log index, timestamp) of the large-round batch that added `dataset_id` (None: none did)."""
        rows = self._rows(
            "SELECT block_number, log_index, timestamp FROM batch_participants "
            "WHERE job_id = ? AND round = ? AND dataset_id = ?",
            (job_id, round_number, _id_text(dataset_id)),
        )
        if not rows:
            return None
        row = rows[0]
        return int(row["block_number"]), int(row["log_index"]), int(row["timestamp"])

    @staticmethod
    def _large_round(r: Mapping[str, Any]) -> IndexedLargeRound:
        return IndexedLargeRound(
            job_id=r["job_id"],
            round=r["round"],
            participant_count=r["participant_count"],
            participants_hash=_unhex(r["participants_hash"]),
            block_number=r["block_number"],
            log_index=r["log_index"],
            tx_hash=r["tx_hash"],
        )

    def large_rounds(self, job_id: int) -> dict[int, IndexedLargeRound]:
        """The job's rounds committed as large rounds (`finalizeLargeRound`), by round number."""
        rows = self._rows("SELECT * FROM large_rounds WHERE job_id = ? ORDER BY round", (job_id,))
        return {int(r["round"]): self._large_round(r) for r in rows}

    def large_round(self, job_id: int, round_number: int) -> IndexedLargeRound | None:
        """Round `round_number`'s LargeRoundCommitted (None: not a large round, or not committed)."""
        rows = self._rows("SELECT * FROM large_rounds WHERE job_id = ? AND round = ?", (job_id, round_number))
        return self._large_round(rows[0]) if rows else None

    def round_participants(
        self, job_id: int, round_number: int, *, limit: int | None = None, offset: int = 0
    ) -> list[RoundParticipant]:
        """A committed round's datasets in ascending id order, a page of them with `limit` / `offset`.

        For a large round (whose RoundCommitted lists none) these are its RoundParticipantsAdded
        batches since its last abort; a round still open, or aborted, has none here.
        """
        rows = self._rows(
            "SELECT p.dataset_id, COALESCE(b.block_number, r.block_number) AS block_number, "
            "COALESCE(b.log_index, r.log_index) AS log_index FROM round_participants p "
            "JOIN rounds r ON r.job_id = p.job_id AND r.round = p.round "
            "LEFT JOIN batch_participants b "
            "ON b.job_id = p.job_id AND b.round = p.round AND b.dataset_id = p.dataset_id "
            "WHERE p.job_id = ? AND p.round = ? ORDER BY p.dataset_id LIMIT ? OFFSET ?",
            (job_id, round_number, -1 if limit is None else limit, offset),
        )
        return [
            RoundParticipant(
                dataset_id=int(r["dataset_id"], 16), block_number=r["block_number"], log_index=r["log_index"]
            )
            for r in rows
        ]

    def round_participant_count(self, job_id: int, round_number: int) -> int:
        """How many datasets `round_participants` holds for the committed round."""
        rows = self._rows(
            "SELECT COUNT(*) AS n FROM round_participants p "
            "JOIN rounds r ON r.job_id = p.job_id AND r.round = p.round WHERE p.job_id = ? AND p.round = ?",
            (job_id, round_number),
        )
        return int(rows[0]["n"])

    def rounds_by_model_digest(self, digest: bytes) -> list[IndexedRound]:
        """The rounds whose aggregated model has this digest (an audit's entry point from a model file)."""
        rows = self._rows(
            "SELECT * FROM rounds WHERE model_digest = ? ORDER BY block_number, log_index", (_hex(digest),)
        )
        return [self._round(r) for r in rows]


def _before_clause() -> str:
    # Strictly before (block, log index); with no log index, everything up to the block's end.
    return "(block_number < ? OR (block_number = ? AND (? IS NULL OR log_index < ?)))"


def _before_params(block_number: int, log_index: int | None) -> tuple[Any, ...]:
    return (block_number, block_number, log_index, log_index)
