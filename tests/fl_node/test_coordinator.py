"""The coordinator against a real chain: commit, quorum, dead nodes, and late revocations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fl_jobs import Job

from fl_node.coordinator import Coordinator
from fl_node.errors import QuorumError
from fl_node.messages import NodeReply, NodeUpdate, RoundRequest
from fl_node.process_node import NodeProcessConfig, ProcessNode
from fl_node.runner import LocalNode, run_offline
from ledger.keys import dev_account
from ledger.provenance import RoundManifest, model_digest, sign_attestation
from ledger.purposes import purpose_id


def committed_rounds(job: Job) -> list[dict[str, object]]:
    events = job.lab.get_logs(job.lab.deployment.deployed_block)
    return [e.args for e in events if e.name == "RoundCommitted" and e.args["jobId"] == job.job.job_id]


def test_round_is_anchored_then_committed(job: Job) -> None:
    outcome = job.runner.coordinator.run_round(job.job, job.runner.nodes)
    on_chain = job.lab.get_job(job.job.job_id)
    assert on_chain.last_round == 1
    assert on_chain.last_digest == outcome.model_digest
    assert model_digest(job.store.get(outcome.model_cid)) == outcome.model_digest
    manifest = RoundManifest.from_bytes(job.store.get(outcome.manifest_cid))
    manifest.check_attestations_root()
    manifest.check_weights()
    assert [p.dataset_id for p in manifest.participants] == sorted(job.federation.dataset_ids)
    [event] = committed_rounds(job)
    assert event["manifestCid"] == outcome.manifest_cid
    assert list(event["participants"]) == sorted(job.federation.dataset_ids)  # type: ignore[call-overload]
    assert event["attestationsRoot"] == manifest.attestations_root


class RevokesAfterTraining:
    """A node whose owner revokes right after the node passed its check and trained."""

    def __init__(self, inner: LocalNode, job: Job, index: int) -> None:
        self.inner, self.job, self.index = inner, job, index
        self.dataset_id = inner.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        reply = self.inner.handle(request)
        self.job.owner(self.index).revoke_grant(
            self.dataset_id,
            self.job.lab.address,
            purpose_id("ai-training"),  # type: ignore[arg-type]
        )
        return reply


def test_revocation_between_check_and_commit_is_never_committed(job: Job) -> None:
    late = job.dataset(1)
    nodes = [RevokesAfterTraining(n, job, 1) if n.dataset_id == late else n for n in job.runner.nodes]
    outcome = job.runner.coordinator.run_round(job.job, nodes)
    assert late not in outcome.participants
    assert outcome.recomputed_without == (late,)
    assert "UsageGrantsRevoked" in outcome.refused[late]
    [event] = committed_rounds(job)
    assert late not in list(event["participants"])  # type: ignore[call-overload]
    manifest = RoundManifest.from_bytes(job.store.get(outcome.manifest_cid))
    assert late not in [p.dataset_id for p in manifest.participants]


def test_too_few_updates_commit_nothing(job: Job) -> None:
    strict = Coordinator(job.lab, job.store, quorum=3)
    job.owner(0).revoke_grant(job.dataset(0), job.lab.address, purpose_id("ai-training"))  # type: ignore[arg-type]
    with pytest.raises(QuorumError, match=r"2 valid update\(s\), quorum is 3"):
        strict.run_round(job.job, job.runner.nodes)
    assert job.lab.get_job(job.job.job_id).last_round == 0
    assert committed_rounds(job) == []


def test_killed_node_process_does_not_stop_the_round(job: Job, tmp_path: Path) -> None:
    processes = []
    for index, dataset_id in enumerate(job.federation.dataset_ids):
        partition_file = job.federation.partitions[index].write(tmp_path / f"node-{index}.npz")
        owner = job.owner(index)
        processes.append(
            ProcessNode(
                NodeProcessConfig(
                    dataset_id=dataset_id,
                    partition_file=partition_file,
                    private_key=bytes(owner.account.key),  # type: ignore[union-attr]
                    rpc_url=owner.rpc_url,
                    deployment=owner.deployment.to_dict(),
                    blockstore_dir=job.store.directory,
                )
            )
        )
    victim = processes[2]
    try:
        outcome = job.runner.coordinator.run_round(job.job, processes, on_dispatch=lambda _: victim.kill())
    finally:
        for process in processes:
            process.stop()
    assert outcome.participants == tuple(sorted(job.dataset(i) for i in (0, 1)))
    assert "unreachable" in outcome.refused[victim.dataset_id]
    [event] = committed_rounds(job)
    assert list(event["participants"]) == list(outcome.participants)  # type: ignore[call-overload]


class SignsWithAnotherKey:
    """A node whose update is attested by a key that does not own the dataset."""

    def __init__(self, inner: LocalNode, job: Job) -> None:
        self.inner, self.job = inner, job
        self.dataset_id = inner.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        reply = self.inner.handle(request)
        assert isinstance(reply, NodeUpdate)
        forged = sign_attestation(
            dev_account(7),
            self.job.lab.chain_id,
            self.job.lab.deployment.address("TrainingLedger"),
            reply.attestation.attestation,
        )
        return replace(reply, attestation=forged)


def test_update_attested_by_a_stranger_is_left_out(job: Job) -> None:
    forged = job.dataset(2)
    nodes = [SignsWithAnotherKey(n, job) if n.dataset_id == forged else n for n in job.runner.nodes]
    outcome = job.runner.coordinator.run_round(job.job, nodes)
    assert forged not in outcome.participants
    assert f"not by the dataset owner {job.owner(2).address}" in outcome.refused[forged]
    [event] = committed_rounds(job)
    assert forged not in list(event["participants"])  # type: ignore[call-overload]


def test_ledger_rounds_give_the_same_model_bytes_as_the_ledger_free_loop(job: Job) -> None:
    run = job.runner.run(job.job)
    assert [o.round_number for o in run.rounds] == [1, 2]
    assert run_offline(job.federation, 2, job.job.seed) == run.final_model_bytes
    assert model_digest(run.final_model_bytes) == job.lab.get_job(job.job.job_id).last_digest


def _request(job: Job) -> RoundRequest:
    s = job.job
    return RoundRequest(
        s.job_id,
        s.last_round + 1,
        s.job_datasets,
        s.last_model_cid,
        s.last_digest,
        s.spec.model_dump_json(),
        s.seed,
    )


def test_verify_update_names_what_does_not_bind(job: Job) -> None:
    request = _request(job)
    honest = job.runner.nodes[0].handle(request)
    assert isinstance(honest, NodeUpdate)
    coordinator = job.runner.coordinator
    assert coordinator.verify_update(request, honest) is None
    owner = job.owner(0).account
    ledger = job.lab.deployment.address("TrainingLedger")

    def resigned(**change: int) -> NodeUpdate:
        attestation = replace(honest.attestation.attestation, **change)
        return replace(honest, attestation=sign_attestation(owner, job.lab.chain_id, ledger, attestation))  # type: ignore[arg-type]

    cases = {
        "attestation names another job, round or dataset": [
            resigned(round=2),
            resigned(job_id=job.job.job_id + 1),
            resigned(dataset_id=job.dataset(1)),
        ],
        "update bytes do not match the attested digest": [
            replace(honest, update_bytes=honest.update_bytes + b" ")
        ],
        "example count does not match the attestation": [
            replace(honest, num_examples=honest.num_examples + 1)
        ],
        "attestation signature is malformed: signature must be 0x + 130 hex digits": [
            replace(
                honest, attestation=replace(honest.attestation, signature=honest.attestation.signature[:-2])
            )
        ],
    }
    for expected, updates in cases.items():
        for update in updates:
            problem = coordinator.verify_update(request, update)
            assert problem is not None and problem.startswith(expected), (expected, problem)
