"""Rebuilding a model's lineage from the chain (logs and views) and the content store.

Nothing here trusts the coordinator, nor the local event index: the job and its rounds come
from the chain's own `JobCreated` and `RoundCommitted` logs (`ledger.audit.chainlog`), the
job's last digest from `getJob` at a pinned head, owners and grants from the registry and
grant logs as they stood at each round's position, and the same facts are read again from
the contracts at the round's block where the node keeps historical state. Manifests, models
and the nodes' updates come from the content store by the CIDs the chain (and the manifests)
name, and the committed model is recomputed from the updates (`ledger.aggregation`).

The index only proposes which (job, round) a model digest belongs to; whatever it says
about the job's rounds is compared with the chain (`Lineage.index_problems`).

`rebuild_lineage` only gathers facts (what resolved, what hashed to what, whose key signed,
what the grant's status was); `ledger.audit.checks` turns them into verdicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from ledger.audit.chainlog import ChainLogs, GrantTimeline, LargeRoundLog, ParticipantBatch
from ledger.audit.chainstate import HistoricalReader, StateQuery, StatusQuery, probe_history
from ledger.audit.errors import AuditTargetError
from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantTerms, JobRecord
from ledger.errors import ContentNotFoundError, LedgerError
from ledger.index import (
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
    eip1271_accepts,
    eip1271_call_data,
    model_digest,
    recover_signer,
)
from ledger.secp import fast_recover
from ledger.store import ContentStore
from ledger.store.cid import CID

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
    owner_end_of_block: str | None = None
    recovered_signer: str | None = None
    signature_error: str | None = None
    owner_is_contract: bool | None = None  # None: not asked (an EOA owner signed, or no state)
    wallet_accepts: bool | None = None  # EIP-1271 answer at the round's block; None: not asked
    wallet_note: str = ""
    grant: GrantStateAt | None = None
    grant_end_of_block: GrantStateAt | None = None
    chain_status: AuthorizationStatus | None = None
    chain_state: DatasetState | None = None
    update_status: str | None = None  # "verified", "missing" (not in the store), "bad"
    terms: GrantTerms | None = None  # the grant's terms at the round's block; None: not read
    update_note: str = ""
    batch: ParticipantBatch | None = None  # large round: the batch that added it (grant checked there)


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
    participants: list[ParticipantFacts] = field(default_factory=list)
    leaves: dict[int, bytes] = field(default_factory=dict)
    aggregate_digest: bytes | None = None  # digest of the model recomputed from the updates
    aggregation_error: str | None = None  # the updates are there but do not make a model
    aggregation_missing: tuple[int, ...] = ()  # dataset ids whose update is not in the store
    large: LargeRoundLog | None = None  # set for a large round (an open job's, committed in batches)

    @property
    def on_chain_participants(self) -> tuple[int, ...]:
        """The datasets the chain committed: the event's list, or a large round's batches."""
        return self.committed.participants if self.large is None else self.large.participants


def grant_position(facts: RoundFacts, p: ParticipantFacts) -> tuple[int, int, int]:
    """(block, log index, timestamp) at which the contract checked `p`'s grant in `facts`' round:
    the round's commit, or for a large round the batch that added the dataset."""
    at = p.batch or facts.committed
    return at.block_number, at.log_index, at.timestamp


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
    head_block: int = 0
    all_rounds: list[IndexedRound] = field(default_factory=list)  # every RoundCommitted of the job
    on_chain_job: JobRecord | None = None
    on_chain_job_error: str | None = None
    chain_history: bool = False
    chain_history_note: str = ""
    no_state_block: int | None = None  # set when the node has no state at the rounds' blocks
    datasets: dict[int, IndexedDataset] = field(default_factory=dict)
    index_problems: list[tuple[int | None, str]] = field(default_factory=list)
    spec: dict[str, Any] | None = None  # the job's spec document, found by its on-chain digest


def spec_cid(spec_digest: bytes) -> str:
    """The CID of a job's spec file: a raw block whose sha256 is the on-chain spec digest."""
    return str(CID(0x55, spec_digest))


def _fetch_spec(store: ContentStore, spec_digest: bytes) -> dict[str, Any] | None:
    """The job's spec document (model, training, preprocessing) when the store holds it.

    The spec's canonical JSON is one raw block, so its CID follows from the digest on chain
    and the store's hash check makes the bytes the ones the job committed to.
    """
    cid = spec_cid(spec_digest)
    try:
        if not store.has(cid):
            return None
        document = json.loads(store.get(cid))
    except (LedgerError, OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


# ---------------------------------------------------------------------------------------
# target resolution


def _looks_like_cid(text: str) -> bool:
    return text.startswith("b") and text.isalnum() and text == text.lower() and len(text) > 40


def resolve_target(
    target: str, index: EventIndex, store: ContentStore, chain: ChainLogs | None = None
) -> AuditTarget:
    """Resolve a job id, a model file, a model CID or a model digest to (job, round).

    A job id is looked up on chain (its `JobCreated` log and `getJob`) when `chain` is given.
    A model is found by its sha256 among the index's committed round digests, then among jobs'
    initial digests; a CID the store does not hold is looked for among the manifests' model
    CIDs. What the index proposes is checked against the chain by the audit.
    """
    text = target.strip()
    job_match = _JOB_ID.fullmatch(text)
    if job_match and not Path(text).is_file():
        job_id = int(job_match.group(1))
        if chain is None:
            job = index.job(job_id)
            return AuditTarget(text, "job", job.job_id, job.rounds_committed)
        found = chain.job(job_id)
        if found is None:
            raise AuditTargetError(
                f"job {job_id} does not exist on chain {chain.client.chain_id}: the TrainingLedger at "
                f"{chain.client.deployment.address('TrainingLedger')} emitted no JobCreated for it up to "
                f"block {chain.head.number}"
            )
        record = chain.client.get_job(job_id, block=chain.head.number)
        return AuditTarget(text, "job", job_id, record.last_round)
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


def _recover(digest: bytes, signature: str) -> str:
    return fast_recover(digest, signature) or recover_signer(digest, signature)


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
    manifest = facts.manifest
    # Leaves under the deployment's domain (the one the auditor trusts), computed once per
    # attestation and shared with the signature check.
    facts.leaves = {
        p.dataset_id: keccak(b"\x19\x01" + domain + manifest.attestation_of(p).struct_hash())
        for p in manifest.participants
    }
    # A parsed manifest has at least one participant, each dataset once: the leaves are never
    # empty or repeated, so the root always computes.
    facts.computed_root = merkle_root(list(facts.leaves.values()))
    facts.model_cid = manifest.model_cid
    try:
        data = store.get(facts.model_cid)
    except LedgerError as error:
        facts.model_error = f"model {facts.model_cid} does not resolve to verified bytes: {error}"
        return
    facts.model_bytes_digest = model_digest(data)
    facts.model_size = len(data)


def _recompute(facts: RoundFacts, store: ContentStore) -> None:
    """Fetches every update by its CID, checks its digest, and recomputes the round's model."""
    manifest = facts.manifest
    if manifest is None:
        return
    by_id = {p.dataset_id: p for p in facts.participants}
    updates: list[bytes] = []
    missing: list[int] = []
    for entry in manifest.participants:
        p = by_id[entry.dataset_id]
        try:
            data = store.get(entry.update_cid)
        except ContentNotFoundError:
            p.update_status, p.update_note = (
                "missing",
                f"update {entry.update_cid} is not in the content store",
            )
            missing.append(entry.dataset_id)
            continue
        except LedgerError as error:
            p.update_status = "bad"
            p.update_note = f"update {entry.update_cid} does not resolve to verified bytes: {error}"
            continue
        digest = hashlib.sha256(data).digest()
        if digest != entry.update_digest:
            p.update_status = "bad"
            p.update_note = (
                f"update {entry.update_cid} hashes to 0x{digest.hex()}, not the attested "
                f"update_digest 0x{entry.update_digest.hex()}"
            )
            continue
        p.update_status, p.update_note = "verified", f"update {entry.update_cid} ({len(data)} bytes)"
        updates.append(data)
    facts.aggregation_missing = tuple(missing)
    if len(updates) < len(manifest.participants):  # one missing or bad: no model to recompute
        return
    from ledger.aggregation import aggregate_updates  # torch: loaded only when there is something to add

    try:
        model = aggregate_updates(updates, [p.num_examples for p in manifest.participants])
    except (LedgerError, ValueError, RuntimeError) as error:
        facts.aggregation_error = f"the attested updates do not aggregate into a model: {error}"
        return
    facts.aggregate_digest = model_digest(model)


def rebuild_lineage(
    target: AuditTarget,
    client: LedgerClient,
    index: EventIndex,
    store: ContentStore,
    *,
    chain: ChainLogs,
    chain_checks: bool = True,
) -> Lineage:
    """Gathers every fact the checks need for `target`'s job up to its round, from the chain.

    `chain` is the reader that resolved `target`: both read the chain at the same head.
    """
    job = chain.job(target.job_id)
    if job is None:
        raise AuditTargetError(
            f"job {target.job_id} (named by the local index for {target.text}) does not exist on chain "
            f"{client.chain_id}: no JobCreated up to block {chain.head.number}; the index does not match "
            "the chain (rebuild it with `sov index rebuild`)"
        )
    all_rounds = chain.rounds(job)
    job = dataclasses.replace(job, rounds_committed=len(all_rounds))
    ledger_address = client.deployment.address("TrainingLedger")
    lineage = Lineage(
        target=target,
        job=job,
        rounds=[RoundFacts(committed=r) for r in all_rounds if r.round <= target.round],
        chain_id=client.chain_id,
        training_ledger=ledger_address,
        rpc_url=client.rpc_url,
        synced_block=index.synced_block(),
        head_block=chain.head.number,
        all_rounds=all_rounds,
    )
    try:
        lineage.on_chain_job = client.get_job(job.job_id, block=chain.head.number)
    except LedgerError as error:
        lineage.on_chain_job_error = str(error)
    lineage.index_problems = compare_index(index, job, all_rounds)
    lineage.spec = _fetch_spec(store, job.spec_digest)

    domain = domain_separator(client.chain_id, ledger_address)
    large = chain.large_rounds(job)
    for facts in lineage.rounds:
        facts.large = large.get(facts.committed.round)
        _fetch_round(facts, store, domain)
    ids = set(job.datasets)
    for facts in lineage.rounds:
        ids |= set(facts.on_chain_participants)
        if facts.manifest is not None:
            ids |= {p.dataset_id for p in facts.manifest.participants}
    timelines, records = chain.timelines(sorted(ids), job.coordinator, job.purpose)
    lineage.datasets = records

    job_datasets = set(job.datasets)
    for facts in lineage.rounds:
        committed = facts.committed
        entries = {p.dataset_id: p for p in facts.manifest.participants} if facts.manifest else {}
        on_chain = set(facts.on_chain_participants)
        for dataset_id in sorted(on_chain | set(entries)):
            timeline = timelines[dataset_id]
            p = ParticipantFacts(
                dataset_id=dataset_id,
                on_chain=dataset_id in on_chain,
                # An open job (no dataset list) admits any dataset; its grant decides.
                in_job=not job_datasets or dataset_id in job_datasets,
                entry=entries.get(dataset_id),
                dataset=records.get(dataset_id),
                owner=timeline.owner_at(committed.block_number, committed.log_index),
                owner_end_of_block=timeline.owner_at(committed.block_number, None),
            )
            leaf = facts.leaves.get(dataset_id)
            if p.entry is not None and leaf is not None:
                try:
                    # The domain is the deployment the auditor trusts, never the manifest's claim.
                    p.recovered_signer = _recover(leaf, p.entry.signature)
                except AttestationError as error:
                    p.signature_error = str(error)
            if facts.large is not None:
                p.batch = facts.large.batch_of(dataset_id)
            block, log_index, timestamp = grant_position(facts, p)
            p.grant = timeline.at(job.coordinator, job.purpose, block, log_index, timestamp)
            facts.participants.append(p)
        _recompute(facts, store)

    if lineage.rounds:
        _read_chain_history(lineage, client, timelines, chain_checks=chain_checks)
    return lineage


def compare_index(
    index: EventIndex, job: IndexedJob, chain_rounds: Sequence[IndexedRound]
) -> list[tuple[int | None, str]]:
    """Where the local index's copy of the job disagrees with the chain's logs: (round, what)."""
    problems: list[tuple[int | None, str]] = []
    synced = index.synced_block()
    try:
        cached = index.job(job.job_id)
    except NotIndexedError:
        if job.block_number <= synced:
            problems.append(
                (None, f"job {job.job_id}: the index lacks the job created at block {job.block_number}")
            )
        return problems
    for name in ("coordinator", "purpose", "datasets", "initial_model_digest", "spec_digest", "block_number"):
        if getattr(cached, name) != getattr(job, name):
            problems.append(
                (
                    None,
                    f"job {job.job_id}: the index says {name} {_show(getattr(cached, name))} but JobCreated "
                    f"on chain says {_show(getattr(job, name))}",
                )
            )
    on_chain = {r.round: r for r in chain_rounds}
    indexed = {r.round: r for r in index.rounds(job.job_id)}
    for number in sorted(set(on_chain) | set(indexed)):
        mine, theirs = indexed.get(number), on_chain.get(number)
        if theirs is None:
            assert mine is not None
            problems.append(
                (
                    number,
                    f"round {number}: the index says it was committed (model digest "
                    f"{_show(mine.model_digest)}, block {mine.block_number}) but the chain has no "
                    f"RoundCommitted for job {job.job_id} round {number}",
                )
            )
            continue
        if mine is None:
            if theirs.block_number <= synced:
                problems.append(
                    (
                        number,
                        f"round {number}: committed on chain at block {theirs.block_number} but "
                        f"missing from the index (synced to block {synced})",
                    )
                )
            continue
        for name in (
            "parent_digest",
            "model_digest",
            "manifest_cid",
            "participants",
            "attestations_root",
            "block_number",
            "block_hash",
            "log_index",
            "tx_hash",
            "timestamp",
        ):
            if getattr(mine, name) != getattr(theirs, name):
                problems.append(
                    (
                        number,
                        f"round {number}: the index says {name} {_show(getattr(mine, name))} but the "
                        f"chain's RoundCommitted says {_show(getattr(theirs, name))}",
                    )
                )
    return problems


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return "[" + ", ".join(f"0x{v:064x}" if isinstance(v, int) else str(v) for v in value) + "]"
    return str(value)


def _read_chain_history(
    lineage: Lineage, client: LedgerClient, timelines: dict[int, GrantTimeline], *, chain_checks: bool
) -> None:
    """Asks the contracts what they said at each round's block (archive / recent state only)."""
    first_block = lineage.rounds[0].committed.block_number
    reader = HistoricalReader(client)
    if chain_checks:
        ok, note = probe_history(client, first_block)
    else:
        ok, note = False, "historical calls were turned off"
    if ok:
        _read_at_blocks(lineage, reader, timelines)
        if reader.has_history is False:
            ok, note = False, reader.reason
    if not ok:
        lineage.chain_history = False
        lineage.no_state_block = first_block
        lineage.chain_history_note = (
            f"not checked: node has no state at block {first_block} ({note}); the grant status, deed "
            "owner and contract-wallet signatures at each round's block could not be read from the contracts"
        )
        for facts in lineage.rounds:
            for p in facts.participants:
                p.chain_status = p.chain_state = None
                p.wallet_accepts = None
        _classify_owners(lineage, reader, at_latest=True)
        return
    lineage.chain_history = True
    lineage.chain_history_note = (
        f"grants, owners and wallet signatures read from the contracts at each round's block via "
        f"{client.rpc_url}"
    )


def _read_at_blocks(lineage: Lineage, reader: HistoricalReader, timelines: dict[int, GrantTimeline]) -> None:
    coordinator, purpose = lineage.job.coordinator, lineage.job.purpose
    status_queries = {
        (facts.committed.round, p.dataset_id): StatusQuery(
            p.dataset_id, coordinator, purpose, grant_position(facts, p)[0]
        )
        for facts in lineage.rounds
        for p in facts.participants
    }
    # Deeds at the commit's block (the attestation check's owner), grants where they were checked.
    state_queries = {
        (facts.committed.round, p.dataset_id): StateQuery(p.dataset_id, facts.committed.block_number)
        for facts in lineage.rounds
        for p in facts.participants
    }
    statuses = reader.authorization_statuses(status_queries.values())
    states = reader.dataset_states(state_queries.values())
    terms = reader.grant_terms(status_queries.values())
    if reader.has_history is False:
        return
    for facts in lineage.rounds:
        for p in facts.participants:
            key = (facts.committed.round, p.dataset_id)
            p.chain_status = statuses.get(status_queries[key])
            p.chain_state = states.get(state_queries[key])
            p.terms = terms.get(status_queries[key])
            log_status = None if p.grant is None else p.grant.status
            if (
                p.chain_status is not None
                and log_status is not None
                and int(p.chain_status) != int(log_status)
            ):
                # A state read at block N sees the end of block N; a later transaction of the
                # same block (e.g. a revocation) explains a difference, anything else is a lie.
                block, _, timestamp = grant_position(facts, p)
                timeline = timelines[p.dataset_id]
                p.grant_end_of_block = timeline.at(coordinator, purpose, block, None, timestamp)
    _classify_owners(lineage, reader, at_latest=False)


def _classify_owners(lineage: Lineage, reader: HistoricalReader, *, at_latest: bool) -> None:
    """For attestations not signed by the owner's own key: is the owner a contract wallet, and does
    its `isValidSignature` accept the signature at the round's block (EIP-1271)?"""
    pending = [
        (facts, p)
        for facts in lineage.rounds
        for p in facts.participants
        if p.entry is not None and p.owner is not None and p.recovered_signer != p.owner
    ]
    if not pending:
        return
    head = lineage.head_block
    codes = reader.codes(
        [(p.owner or "", head if at_latest else facts.committed.block_number) for facts, p in pending]
    )
    wallets = []
    for (facts, p), code in zip(pending, codes, strict=True):
        p.owner_is_contract = None if code is None else bool(code)
        if p.owner_is_contract:
            wallets.append((facts, p))
    if at_latest:
        for facts, p in wallets:
            p.wallet_note = (
                f"not checked: node has no state at block {facts.committed.block_number} to ask the owner "
                f"wallet {p.owner}'s isValidSignature"
            )
        return
    answers = reader.raw_calls(
        [
            (
                p.owner or "",
                eip1271_call_data(facts.leaves[p.dataset_id], p.entry.signature),
                facts.committed.block_number,
            )
            for facts, p in wallets
            if p.entry is not None
        ]
    )
    for (facts, p), answer in zip(wallets, answers, strict=True):
        p.wallet_accepts = answer is not None and eip1271_accepts(answer)
        p.wallet_note = (
            f"owner wallet {p.owner} {'accepts' if p.wallet_accepts else 'rejects'} the signature "
            f"(isValidSignature at block {facts.committed.block_number})"
        )


def grant_status_name(status: GrantStatus | AuthorizationStatus | int) -> str:
    """`no grant`, `expired`, ... for messages."""
    return GrantStatus(int(status)).name.lower().replace("_", " ")
