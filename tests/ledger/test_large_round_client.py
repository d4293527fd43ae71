"""`LedgerClient`'s large-round calls on a real anvil: each refusal decoded, nothing changed by it."""

from __future__ import annotations

import hashlib

import pytest

from ledger.chain.client import LedgerClient
from ledger.chain.types import GrantTerms
from ledger.errors import (
    EmptyBatchError,
    InvalidArgumentError,
    NoLargeRoundError,
    NoParticipantsError,
    NotOpenJobError,
    ParticipantsMismatchError,
    TooFewParticipantsError,
)
from ledger.participants import participants_hash
from ledger.purposes import purpose_id
from tests.conftest import DeployedChain

AI = purpose_id("ai-training")
GENESIS = hashlib.sha256(b"genesis").digest()
SPEC = hashlib.sha256(b"spec").digest()
MODEL = hashlib.sha256(b"model 1").digest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def granted(chain: DeployedChain, count: int, terms: GrantTerms | None = None) -> list[int]:
    """`count` datasets of dev1, each granted to the lab (dev0), ascending."""
    owner, lab = chain[1], chain[0]
    now = lab.latest_block().timestamp
    ids = []
    for i in range(count):
        dataset_id, _ = owner.register_dataset(hashlib.sha256(f"large {i}".encode()).digest())
        owner.issue_grant(dataset_id, lab.address or "", AI, now, now + 86400, terms)
        ids.append(dataset_id)
    return sorted(ids)


def unchanged(lab: LedgerClient, job_id: int) -> None:
    record = lab.get_job(job_id)
    assert (record.last_round, record.last_digest) == (0, GENESIS)


def test_commit_large_round_batches_hash_like_the_contract(deployed: DeployedChain) -> None:
    lab = deployed[0]
    ids = granted(deployed, 5)
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    lab.begin_large_round(job_id, 1, GENESIS)
    lab.add_round_participants(job_id, 1, ids[:3])
    assert lab.open_large_round(job_id) == (1, 3, participants_hash(ids[:3]))
    lab.abort_large_round(job_id, 1)
    receipt = lab.commit_large_round(
        job_id, 1, GENESIS, MODEL, CID, list(reversed(ids)), bytes(32), batch_size=2
    )
    [large] = [e for e in receipt.events if e.name == "LargeRoundCommitted"]
    assert (large.args["participantCount"], large.args["participantsHash"]) == (5, participants_hash(ids))
    added = [e for e in lab.get_logs(receipt.block_number - 3) if e.name == "RoundParticipantsAdded"]
    assert [list(e.args["participants"]) for e in added] == [ids[:2], ids[2:4], ids[4:]]
    assert lab.get_job(job_id).last_digest == MODEL


def test_each_refusal_names_its_cause_and_changes_nothing(deployed: DeployedChain) -> None:
    lab = deployed[0]
    ids = granted(deployed, 2)
    listed, _ = lab.create_job(AI, ids, GENESIS, SPEC)
    with pytest.raises(NotOpenJobError, match=f"job {listed} has a dataset list: commit its rounds with the"):
        lab.begin_large_round(listed, 1, GENESIS)
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    with pytest.raises(NoLargeRoundError, match=rf"job {job_id} has no large round 1 open \(open round: 0"):
        lab.add_round_participants(job_id, 1, ids)
    lab.begin_large_round(job_id, 1, GENESIS)
    with pytest.raises(EmptyBatchError, match=f"a batch of participants for job {job_id} round 1 is empty"):
        lab.add_round_participants(job_id, 1, [])
    with pytest.raises(NoParticipantsError, match=f"job {job_id} round 1 has no participant to commit"):
        lab.finalize_large_round(job_id, 1, MODEL, CID, 0, bytes(32), bytes(32))
    lab.add_round_participants(job_id, 1, ids)
    with pytest.raises(
        ParticipantsMismatchError, match=f"job {job_id} round 1: the batches added 2 participant"
    ):
        lab.finalize_large_round(job_id, 1, MODEL, CID, 1, participants_hash(ids[:1]), bytes(32))
    assert lab.open_large_round(job_id) == (1, 2, participants_hash(ids))
    unchanged(lab, job_id)
    # A duplicate never reaches the chain: the client refuses to hash it.
    lab.abort_large_round(job_id, 1)
    with pytest.raises(InvalidArgumentError, match="large-round participants must be strictly ascending"):
        lab.commit_large_round(job_id, 1, GENESIS, MODEL, CID, [ids[0], ids[0]], bytes(32))
    assert lab.open_large_round(job_id) == (0, 0, bytes(32))
    unchanged(lab, job_id)


def test_min_participants_is_checked_at_finalize(deployed: DeployedChain) -> None:
    lab = deployed[0]
    ids = granted(deployed, 3, GrantTerms(min_participants=3))
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    with pytest.raises(
        TooFewParticipantsError, match="requires at least 3 participants per round; this round has 2"
    ):
        lab.commit_large_round(job_id, 1, GENESIS, MODEL, CID, ids[:2], bytes(32), batch_size=1)
    assert lab.open_large_round(job_id) == (0, 0, bytes(32))  # aborted
    unchanged(lab, job_id)
    lab.commit_large_round(job_id, 1, GENESIS, MODEL, CID, ids, bytes(32), batch_size=2)
    assert lab.get_job(job_id).last_round == 1
