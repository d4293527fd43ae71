"""Batched reads answer exactly what the one-by-one reads answer, errors included."""

from __future__ import annotations

import hashlib

import pytest

from ledger.chain.types import AuthorizationStatus
from ledger.errors import NoGrantError
from ledger.purposes import purpose_id

AI_TRAINING = purpose_id("ai-training")


def _root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def test_batched_reads_equal_single_reads(deployed: object) -> None:
    lab, owner = deployed[0], deployed[1]  # type: ignore[index]
    now = lab.latest_block().timestamp
    ids = []
    for i in range(4):
        dataset_id, _ = owner.register_dataset(_root(f"batch/{i}"))
        ids.append(dataset_id)
    owner.issue_grant(ids[0], lab.address, AI_TRAINING, now, now + 3600)
    owner.issue_grant(ids[1], lab.address, AI_TRAINING, now + 3600, now + 7200)
    owner.issue_grant(ids[2], lab.address, AI_TRAINING, now, now + 3600)
    owner.revoke_grant(ids[2], lab.address, AI_TRAINING)
    unknown = int.from_bytes(_root("batch/unknown"), "big")
    everything = [*ids, unknown]

    statuses = lab.authorization_statuses(everything, lab.address, AI_TRAINING)
    assert statuses == [lab.authorization_status(d, lab.address, AI_TRAINING) for d in everything]
    assert statuses == [
        AuthorizationStatus.AUTHORIZED,
        AuthorizationStatus.NOT_YET_VALID,
        AuthorizationStatus.REVOKED,
        AuthorizationStatus.NO_GRANT,
        AuthorizationStatus.UNKNOWN_DATASET,
    ]
    assert lab.dataset_states(everything) == [lab.dataset_state(d) for d in everything]

    job_id, _ = lab.create_job(AI_TRAINING, sorted(ids[:1]), _root("model"), _root("spec"))
    job, status = lab.job_and_status(job_id, ids[0], lab.address, AI_TRAINING)
    assert job == lab.get_job(job_id)
    assert status is AuthorizationStatus.AUTHORIZED


def test_a_revert_inside_a_batch_raises_its_decoded_error(deployed: object) -> None:
    lab, owner = deployed[0], deployed[1]  # type: ignore[index]
    dataset_id, _ = owner.register_dataset(_root("batch/ungranted"))
    before = lab.latest_block().number
    with pytest.raises(NoGrantError, match="UsageGrantsNoGrant"):
        lab.call_many(
            [
                ("TrainingLedger", "jobCount", []),
                ("UsageGrants", "requireAuthorized", [[dataset_id], lab.address, AI_TRAINING]),
            ]
        )
    assert lab.latest_block().number == before
