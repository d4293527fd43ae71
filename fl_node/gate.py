"""The on-chain gate a data owner's node runs before every round.

The node trusts nothing the coordinator says about permissions: it reads the chain at
the latest block and refuses, with a reason, unless the job's coordinator holds a valid
grant for this node's dataset and the job's purpose, the dataset is not retired, the
dataset is one of the job's, and the base model is the job's last committed model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from eth_utils.crypto import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, JobRecord
from ledger.purposes import purpose_name

from .errors import RoundRefusedError


def _when(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def datasets_hash(job_datasets: Sequence[int]) -> bytes:
    """`keccak256(abi.encodePacked(uint256[]))`, as TrainingLedger stores it."""
    return keccak(b"".join(d.to_bytes(32, "big") for d in job_datasets))


def check_round(
    client: LedgerClient,
    *,
    dataset_id: int,
    job_id: int,
    job_datasets: Sequence[int],
    base_digest: bytes,
) -> JobRecord:
    """Returns the job as read on-chain when this node may train its next round; raises otherwise.

    Raises `RoundRefusedError` whose `reason` is one of: `unknown_job`, `not_in_job`,
    `no_grant`, `not_yet_valid`, `expired`, `revoked`, `dataset_retired`,
    `owner_changed`, `unknown_dataset`, `stale_base_model`.
    """
    job, status = _read(client, job_id, dataset_id)
    if job.coordinator == "0x" + "00" * 20:
        raise RoundRefusedError("unknown_job", f"job {job_id} does not exist on chain {client.chain_id}")
    if datasets_hash(job_datasets) != job.datasets_hash or dataset_id not in job_datasets:
        raise RoundRefusedError(
            "not_in_job", f"dataset {dataset_id:#066x} is not one of job {job_id}'s datasets on chain"
        )
    if status is not AuthorizationStatus.AUTHORIZED:
        raise RoundRefusedError(status.name.lower(), _refusal_message(client, dataset_id, job, status))
    if job.last_digest != base_digest:
        raise RoundRefusedError(
            "stale_base_model",
            f"base model digest 0x{base_digest.hex()} is not job {job_id}'s last committed digest "
            f"0x{job.last_digest.hex()} (round {job.last_round})",
        )
    return job


# A job's coordinator and purpose never change once it exists, so a node that has seen the job
# reads the job and its grant's status in one round trip at the same block.
_job_facts: dict[tuple[int, str, int], tuple[str, bytes]] = {}


def _read(client: LedgerClient, job_id: int, dataset_id: int) -> tuple[JobRecord, AuthorizationStatus]:
    key = (client.chain_id, client.deployment.address("TrainingLedger"), job_id)
    known = _job_facts.get(key)
    if known is not None:
        job, status = client.job_and_status(job_id, dataset_id, *known)
        if (job.coordinator, job.purpose) == known:
            return job, status
    job = client.get_job(job_id)
    if job.coordinator == "0x" + "00" * 20:
        return job, AuthorizationStatus.NO_GRANT
    _job_facts[key] = (job.coordinator, job.purpose)
    return job, client.authorization_status(dataset_id, job.coordinator, job.purpose)


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
