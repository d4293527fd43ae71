"""The node's on-chain gate: every reason to refuse, each with its message, and nothing trained."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fl_jobs import CONFIG, Job, travel

from fl_node.messages import NodeRefusal, NodeUpdate, RoundRequest
from fl_node.runner import EmbeddedRunner, LocalNode, enroll
from ledger.devnet import NodeProcess, start_anvil
from ledger.modelfile import model_from_bytes
from ledger.purposes import purpose_id
from ledger.store import cid_of
from ledger.store.local import LocalBlockstore
from tests.conftest import deploy_on

AI_TRAINING = purpose_id("ai-training")


def request_for(job: Job, base_digest: bytes | None = None) -> RoundRequest:
    state = job.job
    return RoundRequest(
        job_id=state.job_id,
        round_number=state.last_round + 1,
        job_datasets=state.job_datasets,
        base_model_cid=state.last_model_cid,
        base_digest=state.last_digest if base_digest is None else base_digest,
        spec_json=state.spec.model_dump_json(),
        seed=state.seed,
    )


def node(job: Job, index: int) -> LocalNode:
    return next(n for n in job.runner.nodes if n.dataset_id == job.dataset(index))


def refusal(job: Job, index: int, base_digest: bytes | None = None) -> NodeRefusal:
    before = job.lab.get_job(job.job.job_id)
    block = job.lab.latest_block().number
    reply = node(job, index).handle(request_for(job, base_digest))
    assert isinstance(reply, NodeRefusal), f"expected a refusal, got {type(reply).__name__}"
    assert job.lab.get_job(job.job.job_id) == before  # nothing committed, nothing changed
    assert job.lab.latest_block().number == block
    return reply


def test_authorised_node_trains_and_attests(job: Job) -> None:
    reply = node(job, 0).handle(request_for(job))
    assert isinstance(reply, NodeUpdate)
    assert reply.dataset_id == job.dataset(0)
    assert reply.attestation.attestation.num_examples == reply.num_examples > 0
    assert reply.attestation.signer == job.owner(0).address


def test_revoked_grant_is_refused(job: Job) -> None:
    job.owner(1).revoke_grant(job.dataset(1), job.lab.address, AI_TRAINING)  # type: ignore[arg-type]
    reply = refusal(job, 1)
    assert reply.reason == "revoked"
    assert "was revoked" in reply.message and f"{job.dataset(1):#066x}" in reply.message


def test_expired_grant_is_refused(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    job.owner(0).issue_grant(job.dataset(0), job.lab.address, AI_TRAINING, now, now + 60)  # type: ignore[arg-type]
    travel(job.lab, 61)
    reply = refusal(job, 0)
    assert reply.reason == "expired"
    assert "expired at" in reply.message


def test_grant_valid_at_its_last_second_then_expired(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    job.owner(0).issue_grant(job.dataset(0), job.lab.address, AI_TRAINING, now, now + 30)  # type: ignore[arg-type]
    travel(job.lab, 30 - (job.lab.latest_block().timestamp - now))
    assert job.lab.latest_block().timestamp == now + 30
    # the gate reads the latest block: at expiresAt the grant still authorises
    assert isinstance(node(job, 0).handle(request_for(job)), NodeUpdate)
    travel(job.lab, 1)
    assert refusal(job, 0).reason == "expired"


def test_not_yet_valid_grant_is_refused(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    job.owner(2).issue_grant(job.dataset(2), job.lab.address, AI_TRAINING, now + 3600, now + 7200)  # type: ignore[arg-type]
    reply = refusal(job, 2)
    assert reply.reason == "not_yet_valid"
    assert "is not valid before" in reply.message


def test_retired_dataset_is_refused(job: Job) -> None:
    job.owner(0).retire_dataset(job.dataset(0))
    reply = refusal(job, 0)
    assert reply.reason == "dataset_retired"
    assert "retired by its owner" in reply.message


def test_grant_for_another_purpose_is_refused(job: Job) -> None:
    # The hospitals granted 'ai-training'; a job for 'ai-inference' over the same data finds no grant.
    inference = job.runner.coordinator.create_job(
        purpose=purpose_id("ai-inference"),
        datasets=job.federation.dataset_ids,
        spec=job.federation.spec,
        initial_state=model_from_bytes(job.store.get(job.job.last_model_cid)),  # type: ignore[arg-type]
        seed=1,
    )
    request = RoundRequest(
        job_id=inference.job_id,
        round_number=1,
        job_datasets=inference.job_datasets,
        base_model_cid=inference.last_model_cid,
        base_digest=inference.last_digest,
        spec_json=inference.spec.model_dump_json(),
        seed=1,
    )
    reply = node(job, 1).handle(request)
    assert isinstance(reply, NodeRefusal)
    assert reply.reason == "no_grant"
    assert "for 'ai-inference'" in reply.message
    assert job.lab.get_job(inference.job_id).last_round == 0


def test_base_model_that_is_not_the_last_committed_is_refused(job: Job) -> None:
    stale = bytes(32)
    reply = refusal(job, 0, base_digest=stale)
    assert reply.reason == "stale_base_model"
    assert "0x" + job.job.last_digest.hex() in reply.message


def test_deed_transfer_ends_grants(job: Job) -> None:
    new_owner = job.owner(2)
    assert new_owner.address is not None
    job.owner(0).transfer_dataset(job.dataset(0), new_owner.address)
    # The previous owner's node no longer speaks for the data...
    reply = refusal(job, 0)
    assert reply.reason == "not_owner"
    assert f"owned by {new_owner.address}, not by this node's account {job.owner(0).address}" in reply.message
    # ...and the new owner's node finds only the previous owner's grant.
    inner = node(job, 0).node
    successor = replace(inner, account=new_owner.account, client=new_owner)
    block = job.lab.latest_block().number
    reply = successor.handle(request_for(job))
    assert isinstance(reply, NodeRefusal)
    assert reply.reason == "owner_changed"
    assert "previous owner" in reply.message
    assert job.lab.latest_block().number == block


def test_dataset_outside_the_job_is_refused(job: Job) -> None:
    index = 0
    request = request_for(job)
    other = RoundRequest(
        job_id=request.job_id,
        round_number=request.round_number,
        job_datasets=tuple(d for d in request.job_datasets if d != job.dataset(index)),
        base_model_cid=request.base_model_cid,
        base_digest=request.base_digest,
        spec_json=request.spec_json,
        seed=request.seed,
    )
    reply = node(job, index).handle(other)
    assert isinstance(reply, NodeRefusal) and reply.reason == "not_in_job"


def unchanged_refusal(job: Job, request: RoundRequest, index: int = 0) -> NodeRefusal:
    before, block = job.lab.get_job(job.job.job_id), job.lab.latest_block().number
    reply = node(job, index).handle(request)
    assert isinstance(reply, NodeRefusal), f"expected a refusal, got {type(reply).__name__}"
    assert (job.lab.get_job(job.job.job_id), job.lab.latest_block().number) == (before, block)
    return reply


def test_unknown_job_is_refused(job: Job) -> None:
    reply = unchanged_refusal(job, replace(request_for(job), job_id=99))
    assert reply.reason == "unknown_job"
    assert reply.message == f"job 99 does not exist on chain {job.lab.chain_id}"


def test_spec_that_does_not_parse_is_refused(job: Job) -> None:
    reply = unchanged_refusal(job, replace(request_for(job), spec_json='{"input_dim": "many"}'))
    assert reply.reason == "bad_request"
    assert reply.message.startswith("the model spec sent does not parse:")


def test_base_model_bytes_that_do_not_hash_to_the_base_digest_are_refused(job: Job) -> None:
    other = job.store.put(b"not the committed model")
    reply = unchanged_refusal(job, replace(request_for(job), base_model_cid=other))
    assert reply.reason == "base_model_mismatch"
    assert reply.message == (f"bytes of {other} do not hash to the base digest 0x{job.job.last_digest.hex()}")


def test_base_model_missing_from_the_store_is_no_permission(job: Job) -> None:
    missing = cid_of(b"never stored anywhere")
    reply = unchanged_refusal(job, replace(request_for(job), base_model_cid=missing))
    assert reply.reason == "ledger_unavailable"
    assert missing in reply.message


def test_unreachable_chain_is_no_permission(job: Job, anvil: NodeProcess) -> None:
    anvil.stop()
    reply = node(job, 0).handle(request_for(job))
    assert isinstance(reply, NodeRefusal)
    assert reply.reason == "ledger_unavailable"
    assert anvil.rpc_url.removeprefix("http://") in reply.message


def test_data_that_does_not_fit_the_spec_fails_training_without_an_attestation(job: Job) -> None:
    inner = node(job, 0).node
    narrow = replace(inner, features=inner.features[:, :5])
    reply = narrow.handle(request_for(job))
    assert isinstance(reply, NodeRefusal)
    assert reply.reason == "training_failed"
    assert f"data has 5 features, the model spec expects {inner.features.shape[1]}" in reply.message


def test_gate_rereads_a_job_whose_id_a_fresh_chain_reused(job: Job, tmp_path: Path) -> None:
    # The node has seen job 1 on this chain (coordinator dev0, 'ai-training')...
    assert isinstance(node(job, 0).handle(request_for(job)), NodeUpdate)
    # ...then the devnet is replaced by a fresh one at the same addresses, where job 1 is
    # another job (purpose 'analytics'): the cached purpose must not decide the grant check.
    fresh = start_anvil()
    try:
        chain = deploy_on(fresh)
        config = replace(CONFIG, purpose="analytics")
        enrollment = enroll(chain[0], job.federation, config)
        runner = EmbeddedRunner(job.federation, enrollment, LocalBlockstore(tmp_path / "fresh"), config)
        other = runner.create_job()
        assert other.job_id == job.job.job_id
        assert chain.deployment.address("TrainingLedger") == job.lab.deployment.address("TrainingLedger")
        request = RoundRequest(
            other.job_id,
            1,
            other.job_datasets,
            other.last_model_cid,
            other.last_digest,
            other.spec.model_dump_json(),
            other.seed,
        )
        reply = runner.nodes[0].handle(request)
        assert isinstance(reply, NodeUpdate), reply
    finally:
        fresh.stop()
