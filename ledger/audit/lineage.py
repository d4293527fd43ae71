"""Rebuilding a model's lineage from chain events (through the event index) and the content store.

Nothing here trusts the coordinator: the job and its rounds come from `JobCreated` and
`RoundCommitted` events, the manifests and models from the content store by the CIDs those
events (and the manifests) name, owners and grants from the registry and grant events as
they stood at each round's position in the chain, and the same facts are read again from
the contracts at the round's block where the node keeps historical state.

`rebuild_lineage` only gathers facts (what resolved, what hashed to what, whose key signed,
what the grant's status was); `ledger.audit.checks` turns them into pass/fail verdicts.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils.crypto import keccak

from ledger.audit.chainstate import HistoricalReader, StateQuery, StatusQuery, checksum_address, probe_history
from ledger.audit.errors import AuditTargetError
from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, DatasetState, JobRecord
from ledger.errors import LedgerError
from ledger.index import (
    ZERO_ADDRESS,
    EventIndex,
    GrantStateAt,
    GrantStatus,
    IndexedDataset,
    IndexedJob,
    IndexedRound,
    NotIndexedError,
)
from ledger.merkle import merkle_root
from ledger.provenance import (
    AttestationError,
    ManifestError,
    Participant,
    RoundManifest,
    domain_separator,
    model_digest,
    recover_signer,
)
from ledger.store import ContentStore

_JOB_ID = re.compile(r"(?:job[:#]?)?(\d+)", re.IGNORECASE)
_DIGEST = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """What the user asked about, resolved to a job and the round that produced the model."""

    text: str
    kind: str  # "job", "model-cid", "model-file", "model-digest"
    job_id: int
    round: int  # 0 = the job's initial model
    digest: bytes | None = None
    also_in: tuple[tuple[int, int], ...] = ()  # other (job, round) pairs that committed the same digest


@dataclass(slots=True)
class ParticipantFacts:
    """One dataset's part in one round: as committed on chain and/or as listed in the manifest."""

    dataset_id: int
    on_chain: bool
    in_job: bool
    entry: Participant | None
    dataset: IndexedDataset | None
    owner: str | None
    recovered_signer: str | None = None
    signature_error: str | None = None
    grant: GrantStateAt | None = None
    grant_end_of_block: GrantStateAt | None = None
    chain_status: AuthorizationStatus | None = None
    chain_state: DatasetState | None = None


@dataclass(slots=True)
class RoundFacts:
    """One committed round with everything the store and chain said about it."""

    committed: IndexedRound
    manifest: RoundManifest | None = None
    manifest_error: str | None = None
    model_cid: str | None = None
    model_bytes_digest: bytes | None = None
    model_size: int | None = None
    model_error: str | None = None
    computed_root: bytes | None = None
    root_error: str | None = None
    participants: list[ParticipantFacts] = field(default_factory=list)
    leaves: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Lineage:
    """A job's lineage up to the target round, as rebuilt from chain + content store."""

    target: AuditTarget
    job: IndexedJob
    rounds: list[RoundFacts]
    chain_id: int
    training_ledger: str
    rpc_url: str
    synced_block: int
    on_chain_job: JobRecord | None = None
    on_chain_job_error: str | None = None
    chain_history: bool = False
    chain_history_note: str = ""
    datasets: dict[int, IndexedDataset] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# target resolution


def _looks_like_cid(text: str) -> bool:
    return (
        text.startswith(("bafy", "bafk", "b")) and text.isalnum() and text == text.lower() and len(text) > 40
    )


def resolve_target(target: str, index: EventIndex, store: ContentStore) -> AuditTarget:
    """Resolve a job id, a model file, a model CID or a model digest to (job, round).

    A model is found by its sha256 among committed round digests, then among jobs' initial
    digests; a CID the store does not hold is looked for among the manifests' model CIDs.
    """
    text = target.strip()
    job_match = _JOB_ID.fullmatch(text)
    if job_match and not Path(text).is_file():
        job = index.job(int(job_match.group(1)))
        return AuditTarget(text, "job", job.job_id, job.rounds_committed)
    path = Path(text).expanduser()
    if path.is_file():
        return _by_digest(text, "model-file", model_digest(path.read_bytes()), index)
    digest_match = _DIGEST.fullmatch(text)
    if digest_match:
        return _by_digest(text, "model-digest", bytes.fromhex(digest_match.group(1)), index)
    if _looks_like_cid(text):
        try:
            data = store.get(text)
        except LedgerError:
            data = None
        if data is not None:
            return _by_digest(text, "model-cid", model_digest(data), index)
        return _by_manifest_cid(text, index, store)
    raise AuditTargetError(
        f"audit target {target!r} is neither a job id (e.g. 3), an existing model file, a model CID "
        "(bafk...) nor a 32-byte model digest (0x + 64 hex digits)"
    )


def _by_digest(text: str, kind: str, digest: bytes, index: EventIndex) -> AuditTarget:
    rounds = index.rounds_by_model_digest(digest)
    if rounds:
        first = rounds[0]
        others = tuple((r.job_id, r.round) for r in rounds[1:])
        return AuditTarget(text, kind, first.job_id, first.round, digest, others)
    jobs = [j for j in index.jobs() if j.initial_model_digest == digest]
    if jobs:
        return AuditTarget(text, kind, jobs[0].job_id, 0, digest, tuple((j.job_id, 0) for j in jobs[1:]))
    raise AuditTargetError(
        f"no committed round and no job's initial model has digest 0x{digest.hex()} (from {text}); "
        f"the index is synced to block {index.synced_block()}: the model was never committed on this chain"
    )


def _by_manifest_cid(cid: str, index: EventIndex, store: ContentStore) -> AuditTarget:
    for job in index.jobs():
        for committed in index.rounds(job.job_id):
            try:
                manifest = RoundManifest.from_bytes(store.get(committed.manifest_cid))
            except LedgerError:
                continue
            if manifest.model_cid == cid:
                return AuditTarget(cid, "model-cid", job.job_id, committed.round, committed.model_digest)
    raise AuditTargetError(
        f"model CID {cid} is not in the content store and no readable round manifest names it; "
        "import the content (a CAR export) or give the model file"
    )


# ---------------------------------------------------------------------------------------
# rebuild


def _owner_at(dataset: IndexedDataset | None, block: int, log_index: int) -> str | None:
    """The deed holder just before (block, log_index), from the deed's transfer history."""
    if dataset is None:
        return None
    positions = [(t.block_number, t.log_index) for t in dataset.transfers]
    at = bisect.bisect_left(positions, (block, log_index))
    if at == 0:
        return None
    holder = dataset.transfers[at - 1].to_address
    return None if holder == ZERO_ADDRESS else holder


_SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def _fast_recover(digest: bytes, signature: str) -> str | None:
    """The signer of a well-formed low-s signature via libsecp256k1, or None (then the slow,
    explaining path in `ledger.provenance.recover_signer` runs)."""
    try:
        from coincurve import PublicKey
    except ImportError:  # pragma: no cover - coincurve is a dependency; keep working without it
        return None
    if len(signature) != 132:
        return None
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        return None
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    s = int.from_bytes(raw[32:64], "big")
    if v not in (0, 1) or not 0 < s <= _SECP256K1_HALF_N or int.from_bytes(raw[:32], "big") == 0:
        return None
    try:
        public = PublicKey.from_signature_and_message(raw[:64] + bytes([v]), digest, hasher=None)
    except ValueError:
        return None
    return checksum_address("0x" + keccak(public.format(compressed=False)[1:])[-20:].hex())


def _recover(digest: bytes, signature: str) -> str:
    return _fast_recover(digest, signature) or recover_signer(digest, signature)


def _fetch_round(facts: RoundFacts, store: ContentStore, domain: bytes) -> None:
    committed = facts.committed
    try:
        facts.manifest = RoundManifest.from_bytes(store.get(committed.manifest_cid))
    except ManifestError as error:
        facts.manifest_error = f"manifest {committed.manifest_cid} does not parse: {error}"
    except LedgerError as error:
        facts.manifest_error = (
            f"manifest {committed.manifest_cid} does not resolve to verified bytes: {error}"
        )
    if facts.manifest is None:
        facts.model_error = "the model CID is unknown because the round manifest is unavailable"
        return
    # Leaves under the deployment's domain (the one the auditor trusts), computed once per
    # attestation and shared with the signature check.
    facts.leaves = {
        p.dataset_id: keccak(
            b"\x19\x01" + domain + p.attestation(facts.committed.job_id, facts.committed.round).struct_hash()
        )
        for p in facts.manifest.participants
    }
    try:
        facts.computed_root = merkle_root(list(facts.leaves.values()))
    except LedgerError as error:
        facts.root_error = str(error)
    facts.model_cid = facts.manifest.model_cid
    try:
        data = store.get(facts.model_cid)
    except LedgerError as error:
        facts.model_error = f"model {facts.model_cid} does not resolve to verified bytes: {error}"
        return
    facts.model_bytes_digest = model_digest(data)
    facts.model_size = len(data)


def rebuild_lineage(
    target: AuditTarget,
    client: LedgerClient,
    index: EventIndex,
    store: ContentStore,
    *,
    chain_checks: bool = True,
) -> Lineage:
    """Gathers every fact the checks need for `target`'s job up to its round."""
    job = index.job(target.job_id)
    rounds = [r for r in index.rounds(job.job_id) if r.round <= target.round]
    ledger_address = client.deployment.address("TrainingLedger")
    lineage = Lineage(
        target=target,
        job=job,
        rounds=[RoundFacts(committed=r) for r in rounds],
        chain_id=client.chain_id,
        training_ledger=ledger_address,
        rpc_url=client.rpc_url,
        synced_block=index.synced_block(),
    )
    try:
        lineage.on_chain_job = client.get_job(job.job_id)
    except LedgerError as error:
        lineage.on_chain_job_error = str(error)

    job_datasets = set(job.datasets)
    dataset_cache: dict[int, IndexedDataset | None] = {}

    def dataset(dataset_id: int) -> IndexedDataset | None:
        if dataset_id not in dataset_cache:
            try:
                dataset_cache[dataset_id] = index.dataset(dataset_id)
            except NotIndexedError:
                dataset_cache[dataset_id] = None
        return dataset_cache[dataset_id]

    domain = domain_separator(client.chain_id, ledger_address)
    grants = _GrantStates(index, job)
    for facts in lineage.rounds:
        _fetch_round(facts, store, domain)
        committed = facts.committed
        entries = {p.dataset_id: p for p in facts.manifest.participants} if facts.manifest else {}
        ids = sorted(set(committed.participants) | set(entries))
        for dataset_id in ids:
            record = dataset(dataset_id)
            p = ParticipantFacts(
                dataset_id=dataset_id,
                on_chain=dataset_id in committed.participants,
                in_job=dataset_id in job_datasets,
                entry=entries.get(dataset_id),
                dataset=record,
                owner=_owner_at(record, committed.block_number, committed.log_index),
            )
            leaf = facts.leaves.get(dataset_id)
            if p.entry is not None and leaf is not None:
                try:
                    # The domain is the deployment the auditor trusts, never the manifest's claim.
                    p.recovered_signer = _recover(leaf, p.entry.signature)
                except AttestationError as error:
                    p.signature_error = str(error)
            p.grant = grants.at(dataset_id, record, committed)
            facts.participants.append(p)
    lineage.datasets = {k: v for k, v in dataset_cache.items() if v is not None}

    if chain_checks and lineage.rounds:
        _read_chain_history(lineage, client, index)
    return lineage


class _GrantStates:
    """`EventIndex.grant_state_at` for many rounds, asking the index once per stretch of history.

    Between two events that touch a grant (its issues and revocations, the deed's transfers,
    the dataset's registration and retirement) only the block time changes, so the state at
    a later round is the stretch's state with the time window re-evaluated at that round's
    timestamp. A round in a block with a retirement (known only by block) always asks the index.
    """

    _TIME_DEPENDENT = (GrantStatus.AUTHORIZED, GrantStatus.NOT_YET_VALID, GrantStatus.EXPIRED)

    def __init__(self, index: EventIndex, job: IndexedJob) -> None:
        self.index = index
        self.job = job
        self._boundaries: dict[int, list[tuple[int, int]]] = {}
        self._retired: dict[int, int | None] = {}
        self._cache: dict[tuple[int, int], GrantStateAt] = {}

    def _history(self, dataset_id: int, record: IndexedDataset | None) -> list[tuple[int, int]]:
        if dataset_id not in self._boundaries:
            positions = [
                (e.block_number, e.log_index)
                for e in self.index.grant_history(dataset_id, self.job.coordinator, self.job.purpose)
            ]
            if record is not None:
                positions.append((record.block_number, record.log_index))
                positions.extend((t.block_number, t.log_index) for t in record.transfers)
            self._boundaries[dataset_id] = sorted(positions)
            self._retired[dataset_id] = None if record is None else record.retired_block
        return self._boundaries[dataset_id]

    def at(self, dataset_id: int, record: IndexedDataset | None, committed: IndexedRound) -> GrantStateAt:
        boundaries = self._history(dataset_id, record)
        position = (committed.block_number, committed.log_index)
        retired = self._retired[dataset_id]
        stretch = bisect.bisect_left(boundaries, position)
        if retired is not None:
            # retirement is indexed by block only: split the stretch there
            stretch = stretch * 2 + (1 if committed.block_number > retired else 0)
            if committed.block_number == retired:
                return self._ask(dataset_id, committed)
        cached = self._cache.get((dataset_id, stretch))
        if cached is None:
            state = self._ask(dataset_id, committed)
            self._cache[(dataset_id, stretch)] = state
            return state
        status = cached.status
        if status in self._TIME_DEPENDENT and cached.issued is not None:
            issued = cached.issued
            assert issued.not_before is not None and issued.expires_at is not None
            if committed.timestamp < issued.not_before:
                status = GrantStatus.NOT_YET_VALID
            elif committed.timestamp > issued.expires_at:
                status = GrantStatus.EXPIRED
            else:
                status = GrantStatus.AUTHORIZED
        return dataclasses.replace(
            cached,
            block_number=committed.block_number,
            log_index=committed.log_index,
            timestamp=committed.timestamp,
            status=status,
        )

    def _ask(self, dataset_id: int, committed: IndexedRound) -> GrantStateAt:
        return self.index.grant_state_at(
            dataset_id,
            self.job.coordinator,
            self.job.purpose,
            committed.block_number,
            committed.log_index,
            timestamp=committed.timestamp,
        )


def _read_chain_history(lineage: Lineage, client: LedgerClient, index: EventIndex) -> None:
    """Asks the contracts what they said at each round's block (archive / recent state only)."""
    first_block = lineage.rounds[0].committed.block_number
    ok, note = probe_history(client, first_block)
    if not ok:
        lineage.chain_history = False
        lineage.chain_history_note = (
            f"the node serves no state at block {first_block} ({note}); grants checked from the index"
        )
        return
    reader = HistoricalReader(client)
    coordinator, purpose = lineage.job.coordinator, lineage.job.purpose
    status_queries = {
        (facts.committed.round, p.dataset_id): StatusQuery(
            p.dataset_id, coordinator, purpose, facts.committed.block_number
        )
        for facts in lineage.rounds
        for p in facts.participants
    }
    state_queries = {key: StateQuery(query.dataset_id, query.block) for key, query in status_queries.items()}
    statuses = reader.authorization_statuses(status_queries.values())
    states = reader.dataset_states(state_queries.values())
    if reader.has_history is False:
        lineage.chain_history = False
        lineage.chain_history_note = (
            f"the node refused historical reads ({reader.reason}); grants checked from the index"
        )
        return
    lineage.chain_history = True
    lineage.chain_history_note = (
        f"grants and owners read from the contracts at each round's block via {client.rpc_url}"
    )
    for facts in lineage.rounds:
        for p in facts.participants:
            key = (facts.committed.round, p.dataset_id)
            p.chain_status = statuses.get(status_queries[key])
            p.chain_state = states.get(state_queries[key])
            index_status = None if p.grant is None else p.grant.status
            if (
                p.chain_status is not None
                and index_status is not None
                and int(p.chain_status) != int(index_status)
            ):
                # A state read at block N sees the end of block N; a later transaction of the
                # same block (e.g. a revocation) explains a difference, anything else is a lie.
                p.grant_end_of_block = index.grant_state_at(
                    p.dataset_id,
                    coordinator,
                    purpose,
                    facts.committed.block_number,
                    None,
                    timestamp=facts.committed.timestamp,
                )


def grant_status_name(status: GrantStatus | AuthorizationStatus | int) -> str:
    """`no grant`, `expired`, ... for messages."""
    return GrantStatus(int(status)).name.lower().replace("_", " ")
