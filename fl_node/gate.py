"""The on-chain gate a data owner's node runs before every round.

The node trusts nothing the coordinator says: it reads the chain at the latest block and
refuses, with a reason, unless

- the job exists and this node's dataset is one of the job's datasets;
- the deed's current owner is the node itself: its own account, or the EIP-1271 contract
  wallet configured on the node (`owner_wallet`) whose `isValidSignature` accepts the node
  key's signature (so the attestations the node signs will verify as the owner's). Someone
  who registered the hospital's content hash first under another key cannot make the
  hospital's node train for a grant that key issued;
- the job's coordinator holds a valid grant for the dataset and the job's purpose, and the
  dataset is not retired;
- the base model is the job's last committed model;
- the spec the node was sent hashes to the job's on-chain spec digest.

Every fact comes from one batched read (one JSON-RPC round trip, one block) once the node
has seen the job: the job record, the grant's status, the deed's owner and, with a wallet,
the wallet's signature check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils.crypto import keccak

from ledger.chain.client import LedgerClient, _grant_record, _job_record, dataset_id_of
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantRecord, JobRecord
from ledger.provenance import eip1271_accepts, eip1271_call_data, to_checksum_address
from ledger.purposes import purpose_name

from .errors import RoundRefusedError

ZERO_ADDRESS = "0x" + "00" * 20

REASONS = (
    "unknown_job",
    "not_in_job",
    "not_owner",
    "wallet_refuses_key",
    "no_grant",
    "not_yet_valid",
    "expired",
    "revoked",
    "dataset_retired",
    "owner_changed",
    "unknown_dataset",
    "stale_base_model",
    "spec_mismatch",
    "too_few_participants",
)
"""Every reason code `check_round` refuses with."""


class NodeKey(Protocol):
    """The node's signing account (eth-account's `LocalAccount` fits)."""

    @property
    def address(self) -> str: ...

    def unsafe_sign_hash(self, message_hash: Any) -> Any: ...


def _when(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def datasets_hash(job_datasets: Sequence[int]) -> bytes:
    """`keccak256(abi.encodePacked(uint256[]))`, as TrainingLedger stores it."""
    return keccak(b"".join(d.to_bytes(32) for d in job_datasets))


def wallet_probe_digest(chain_id: int, wallet: str, node: str) -> bytes:
    """The digest a node signs to ask its owner wallet whether the wallet accepts its key.

    Bound to the chain, the wallet and the node's address, so the answer is about this key
    for this wallet; the node signs it with the same key and scheme as its attestations.
    """
    return keccak(
        b"sovereign-ledger/node-key-check/v1"
        + chain_id.to_bytes(32)
        + bytes.fromhex(to_checksum_address(wallet)[2:])
        + bytes.fromhex(to_checksum_address(node)[2:])
    )


# ECDSA signatures here are deterministic (RFC 6979): sign each probe once per process.
_probe_signatures: dict[tuple[int, str, str], str] = {}


def _probe_signature(key: NodeKey, chain_id: int, wallet: str) -> str:
    cache_key = (chain_id, wallet, to_checksum_address(key.address))
    signature = _probe_signatures.get(cache_key)
    if signature is None:
        digest = wallet_probe_digest(chain_id, wallet, key.address)
        signature = _probe_signatures[cache_key] = "0x" + bytes(key.unsafe_sign_hash(digest).signature).hex()
    return signature


@dataclass(frozen=True)
class _Facts:
    job: JobRecord
    status: AuthorizationStatus
    deed: DatasetState
    wallet_accepts: bool | None
    grant: GrantRecord | None = None


@dataclass(frozen=True)
class Admitted:
    """What `check_round` read when it let the node train: the job and the grant (with its terms)."""

    job: JobRecord
    grant: GrantRecord


def check_round(
    client: LedgerClient,
    *,
    dataset_id: int,
    job_id: int,
    job_datasets: Sequence[int],
    base_digest: bytes,
    spec_digest: bytes,
    node_key: NodeKey,
    owner_wallet: str | None = None,
    participants: Sequence[int] | None = None,
) -> Admitted:
    """Returns the job and grant as read on-chain when this node may train its next round; raises otherwise.

    `base_digest` is the digest of the model bytes the node was sent, `spec_digest` the
    digest of the spec it was sent (`ModelSpec.spec_digest()`), `node_key` the node's
    signing account and `owner_wallet` the EIP-1271 wallet that owns the node's dataset,
    when it is not the node's own account.

    Raises `RoundRefusedError` whose `reason` is one of (checked in this order):
    `unknown_job`, `not_in_job`, `not_owner` (the deed's owner is neither the node's account
    nor its configured wallet), `wallet_refuses_key` (the configured wallet owns the deed
    but does not accept the node key's signatures), then the grant's status: `no_grant`,
    `not_yet_valid`, `expired`, `revoked`, `dataset_retired`, `owner_changed` (the grant was
    issued by a previous deed owner), `unknown_dataset`; then `stale_base_model`,
    `spec_mismatch`, then `too_few_participants` (the round's declared `participants`, the
    datasets the coordinator selected, are fewer than the grant's `min_participants`, or not
    declared, None, while the grant sets a minimum). `REASONS` lists them all.
    """
    node = to_checksum_address(node_key.address)
    wallet = None if owner_wallet is None else to_checksum_address(owner_wallet)
    facts = _read(client, job_id, dataset_id, node_key, wallet)
    job = facts.job
    if job.coordinator == ZERO_ADDRESS:
        raise RoundRefusedError("unknown_job", f"job {job_id} does not exist on chain {client.chain_id}")
    # An open job (`createOpenJob`, a datasets hash of zero, which no list hashes to) has no
    # dataset list: the grant checked below is what admits a dataset to it.
    listed = job.datasets_hash != bytes(32)
    if listed and (datasets_hash(job_datasets) != job.datasets_hash or dataset_id not in job_datasets):
        raise RoundRefusedError(
            "not_in_job", f"dataset {dataset_id:#066x} is not one of job {job_id}'s datasets on chain"
        )
    owner = facts.deed.owner
    if owner != node and owner != wallet:
        mine = node if wallet is None else f"{node} or its wallet {wallet}"
        raise RoundRefusedError(
            "not_owner",
            f"dataset {dataset_id:#066x} is owned by {owner}, not by this node's account {mine}; "
            "the node trains only on a deed its owner holds",
        )
    if owner == wallet and not facts.wallet_accepts:
        raise RoundRefusedError(
            "wallet_refuses_key",
            f"dataset {dataset_id:#066x} is owned by the wallet {wallet}, which does not accept "
            f"signatures of this node's key {node} (EIP-1271 isValidSignature)",
        )
    if facts.status is not AuthorizationStatus.AUTHORIZED:
        raise RoundRefusedError(
            facts.status.name.lower(), _refusal_message(client, dataset_id, job, facts.status)
        )
    if job.last_digest != base_digest:
        raise RoundRefusedError(
            "stale_base_model",
            f"base model digest 0x{base_digest.hex()} is not job {job_id}'s last committed digest "
            f"0x{job.last_digest.hex()} (round {job.last_round})",
        )
    if job.spec_digest != spec_digest:
        raise RoundRefusedError(
            "spec_mismatch",
            f"the model spec sent for job {job_id} hashes to 0x{spec_digest.hex()}, but the job's "
            f"on-chain spec digest is 0x{job.spec_digest.hex()}",
        )
    assert facts.grant is not None  # read with every known job
    minimum = facts.grant.terms.min_participants
    if minimum and (participants is None or len(set(participants)) < minimum):
        declared = "none declared" if participants is None else f"{len(set(participants))}"
        raise RoundRefusedError(
            "too_few_participants",
            f"round of job {job_id} has {declared} participants; the grant of dataset {dataset_id:#066x} "
            f"to {job.coordinator} requires at least {minimum}",
        )
    return Admitted(job, facts.grant)


# A job's coordinator and purpose never change once it exists, so a node that has seen the job
# reads everything else in one round trip at one block.
_job_facts: dict[tuple[int, str, int], tuple[str, bytes]] = {}


def _read(
    client: LedgerClient, job_id: int, dataset_id: int, node_key: NodeKey, wallet: str | None
) -> _Facts:
    key = (client.chain_id, client.deployment.address("TrainingLedger"), job_id)
    known = _job_facts.get(key)
    if known is None:
        job = client.get_job(job_id)
        if job.coordinator == ZERO_ADDRESS:
            return _Facts(job, AuthorizationStatus.NO_GRANT, DatasetState(ZERO_ADDRESS, 0, False), None)
        known = _job_facts[key] = (job.coordinator, job.purpose)
    facts = _batched(client, job_id, dataset_id, known, node_key, wallet)
    if (facts.job.coordinator, facts.job.purpose) != known:  # a redeployed devnet reused the id
        # Nodes of one process gate concurrently: another may have dropped the entry already.
        _job_facts.pop(key, None)
        return _read(client, job_id, dataset_id, node_key, wallet)
    return facts


def _batched(
    client: LedgerClient,
    job_id: int,
    dataset_id: int,
    known: tuple[str, bytes],
    node_key: NodeKey,
    wallet: str | None,
) -> _Facts:
    coordinator, purpose = known
    raw_calls = []
    if wallet is not None:
        digest = wallet_probe_digest(client.chain_id, wallet, node_key.address)
        raw_calls.append(
            (wallet, eip1271_call_data(digest, _probe_signature(node_key, client.chain_id, wallet)))
        )
    (job_raw, (status,), (owner, epoch, retired), (grant_raw,)), answers = client.read_batch(
        [
            ("TrainingLedger", "getJob", [job_id]),
            ("UsageGrants", "authorizationStatus", [dataset_id_of(dataset_id), coordinator, purpose]),
            ("DatasetRegistry", "datasetState", [dataset_id_of(dataset_id)]),
            ("UsageGrants", "getGrant", [dataset_id_of(dataset_id), coordinator, purpose]),
        ],
        raw_calls,
    )
    job = _job_record(job_raw[0])
    accepts = None if wallet is None else answers[0] is not None and eip1271_accepts(answers[0])
    deed = DatasetState(to_checksum_address(owner), int(epoch), bool(retired))
    return _Facts(job, AuthorizationStatus(int(status)), deed, accepts, _grant_record(grant_raw))


def _refusal_message(
    client: LedgerClient, dataset_id: int, job: JobRecord, status: AuthorizationStatus
) -> str:
    purpose = purpose_name(job.purpose)
    subject = f"grant of dataset {dataset_id:#066x} to {job.coordinator} for '{purpose}'"
    if status is AuthorizationStatus.EXPIRED:
        grant = client.get_grant(dataset_id, job.coordinator, job.purpose)
        return f"{subject} expired at {_when(grant.expires_at)}"
    if status is AuthorizationStatus.NOT_YET_VALID:
        grant = client.get_grant(dataset_id, job.coordinator, job.purpose)
        return f"{subject} is not valid before {_when(grant.not_before)}"
    if status is AuthorizationStatus.REVOKED:
        return f"{subject} was revoked"
    if status is AuthorizationStatus.NO_GRANT:
        return f"no {subject} exists"
    if status is AuthorizationStatus.DATASET_RETIRED:
        return f"dataset {dataset_id:#066x} was retired by its owner (consent withdrawn)"
    if status is AuthorizationStatus.OWNER_CHANGED:
        return f"{subject} was issued by a previous owner of the deed"
    return f"dataset {dataset_id:#066x} is not registered"
