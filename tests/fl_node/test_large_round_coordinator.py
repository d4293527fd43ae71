"""The coordinator on an open job: rounds committed as large rounds (batches), on a real chain."""

from __future__ import annotations

import pytest
from fl_jobs import Job

from fl_node.coordinator import JobState
from fl_node.errors import RoundRefusedError
from fl_node.gate import check_round
from fl_node.messages import NodeReply, RoundRequest
from fl_node.model import initial_state
from fl_node.runner import LocalNode
from ledger.participants import participants_hash
from ledger.provenance import RoundManifest
from ledger.purposes import purpose_id

AI = purpose_id("ai-training")


def open_job(job: Job) -> JobState:
    """An open job over the same federation, created by the same coordinator."""
    return job.runner.coordinator.create_job(
        purpose=AI,
        datasets=job.federation.dataset_ids,
        spec=job.federation.spec,
        initial_state=initial_state(job.federation.spec),  # type: ignore[arg-type]
        seed=7,
        open_job=True,
    )


def events_of(job: Job, job_id: int, name: str) -> list[dict[str, object]]:
    events = job.lab.get_logs(job.lab.deployment.deployed_block)
    return [e.args for e in events if e.name == name and e.args["jobId"] == job_id]


def test_open_job_round_is_committed_as_a_large_round(job: Job) -> None:
    state = open_job(job)
    assert state.job_datasets == ()
    assert job.lab.get_job(state.job_id).datasets_hash == bytes(32)
    outcome = job.runner.coordinator.run_round(state, job.runner.nodes)
    expected = tuple(sorted(job.federation.dataset_ids))
    assert outcome.participants == expected
    assert outcome.refused == {}
    on_chain = job.lab.get_job(state.job_id)
    assert (on_chain.last_round, on_chain.last_digest) == (1, outcome.model_digest)
    [committed] = events_of(job, state.job_id, "RoundCommitted")
    assert list(committed["participants"]) == []  # type: ignore[call-overload]
    assert committed["manifestCid"] == outcome.manifest_cid
    [large] = events_of(job, state.job_id, "LargeRoundCommitted")
    assert large["participantCount"] == 3
    assert large["participantsHash"] == participants_hash(expected)
    [batch] = events_of(job, state.job_id, "RoundParticipantsAdded")
    assert tuple(batch["participants"]) == expected  # type: ignore[call-overload]
    manifest = RoundManifest.from_bytes(job.store.get(outcome.manifest_cid))
    assert tuple(p.dataset_id for p in manifest.participants) == expected
    assert committed["attestationsRoot"] == manifest.attestations_root
    # The next round builds on it (the nodes' gate admits the open job again).
    second = job.runner.coordinator.run_round(state, job.runner.nodes)
    assert job.lab.get_job(state.job_id).last_digest == second.model_digest


class RevokesAfterTraining:
    """A node whose owner revokes right after the node passed its check and trained."""

    def __init__(self, inner: LocalNode, job: Job, index: int) -> None:
        self.inner, self.job, self.index = inner, job, index
        self.dataset_id = inner.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        reply = self.inner.handle(request)
        self.job.owner(self.index).revoke_grant(self.dataset_id, self.job.lab.address, AI)  # type: ignore[arg-type]
        return reply


def test_open_job_revocation_before_commit_aborts_the_batch_and_recomputes(job: Job) -> None:
    state = open_job(job)
    late = job.dataset(1)
    nodes = [RevokesAfterTraining(n, job, 1) if n.dataset_id == late else n for n in job.runner.nodes]
    outcome = job.runner.coordinator.run_round(state, nodes)
    assert outcome.recomputed_without == (late,)
    assert "UsageGrantsRevoked" in outcome.refused[late]
    assert late not in outcome.participants
    [large] = events_of(job, state.job_id, "LargeRoundCommitted")
    assert large["participantCount"] == 2
    assert large["participantsHash"] == participants_hash(outcome.participants)
    # The refused batch never landed; nothing of the first attempt stays open.
    assert events_of(job, state.job_id, "LargeRoundAborted") != []
    added = [tuple(b["participants"]) for b in events_of(job, state.job_id, "RoundParticipantsAdded")]  # type: ignore[call-overload]
    assert added == [outcome.participants]
    assert job.lab.open_large_round(state.job_id) == (0, 0, bytes(32))


def test_more_datasets_than_the_bitmask_make_an_open_job(job: Job) -> None:
    many = list(range(1, 258))  # 257 ids: an open job is created without naming them on chain
    state = job.runner.coordinator.create_job(
        purpose=AI,
        datasets=many,
        spec=job.federation.spec,
        initial_state=initial_state(job.federation.spec),  # type: ignore[arg-type]
        seed=7,
    )
    assert state.job_datasets == ()
    assert job.lab.get_job(state.job_id).datasets_hash == bytes(32)
    [created] = events_of(job, state.job_id, "JobCreated")
    assert list(created["datasets"]) == []  # type: ignore[call-overload]


def test_bitmask_jobs_are_unchanged(job: Job) -> None:
    """A listed job still commits in one commitRound, with its participants in the event."""
    outcome = job.runner.coordinator.run_round(job.job, job.runner.nodes)
    [committed] = events_of(job, job.job.job_id, "RoundCommitted")
    assert tuple(committed["participants"]) == outcome.participants  # type: ignore[call-overload]
    assert events_of(job, job.job.job_id, "RoundParticipantsAdded") == []


def test_gate_refuses_a_listed_job_sent_without_its_list(job: Job) -> None:
    """The open-job exemption does not reach listed jobs: an empty list is still `not_in_job`."""
    index = 0
    node = job.runner.nodes[index]
    with pytest.raises(RoundRefusedError, match="is not one of job") as refused:
        check_round(
            job.owner(index),
            dataset_id=node.dataset_id,
            job_id=job.job.job_id,
            job_datasets=(),
            base_digest=job.job.last_digest,
            spec_digest=job.federation.spec.spec_digest(),
            node_key=job.owner(index).account,  # type: ignore[arg-type]
        )
    assert refused.value.reason == "not_in_job"
