"""The gate exactly: times in refusals, the wallet probe digest, the datasets hash, each refusal's text.

For `make mutation`: the pure parts first, then refusals on a real chain with their full messages
(`test_gate.py` has one case per reason and what the node does around it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from fl_jobs import Job, deploy_contract, through_wallet, travel

from fl_node import gate
from fl_node.coordinator import Coordinator, JobState
from fl_node.gate import REASONS, _probe_signature, _when, datasets_hash, wallet_probe_digest
from fl_node.messages import NodeRefusal, RoundRequest
from fl_node.model import initial_state
from fl_node.node import Admission, DataOwnerNode
from ledger.chain.client import LedgerClient
from ledger.chain.http import KeepAliveHTTPProvider
from ledger.chain.types import GrantTerms
from ledger.keys import dev_account
from ledger.purposes import purpose_id
from ledger.store import cid_of

AI_TRAINING = purpose_id("ai-training")

WALLET = "0x" + "ab" * 20
NODE = Account.from_key(keccak(text="node key"))


@pytest.fixture()
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in a time zone 5:30 ahead of UTC."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_refusal_times_are_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    assert time.strftime("%H:%M", time.localtime(0)) == "05:30"  # the zone took effect
    assert _when(0) == "1970-01-01 00:00:00 UTC"
    assert _when(1_767_225_599) == "2025-12-31 23:59:59 UTC"


def test_wallet_probe_digest_binds_chain_wallet_and_node() -> None:
    expected = keccak(
        b"sovereign-ledger/node-key-check/v1"
        + (31337).to_bytes(32, "big")
        + bytes.fromhex("ab" * 20)
        + bytes.fromhex(NODE.address[2:])
    )
    assert wallet_probe_digest(31337, WALLET, NODE.address.lower()) == expected
    assert wallet_probe_digest(1, WALLET, NODE.address) != expected


def test_probe_signature_is_the_node_keys_signature_of_the_probe() -> None:
    gate._probe_signatures.clear()
    signature = _probe_signature(NODE, 31337, WALLET)
    digest = wallet_probe_digest(31337, WALLET, NODE.address)
    assert signature == "0x" + bytes(NODE.unsafe_sign_hash(digest).signature).hex()
    assert _probe_signature(NODE, 31337, WALLET) == signature
    assert _probe_signature(NODE, 1, WALLET) != signature


def test_datasets_hash_is_abi_encode_packed_of_the_ids() -> None:
    assert datasets_hash([1, 2**256 - 1]) == keccak(
        (1).to_bytes(32, "big") + (2**256 - 1).to_bytes(32, "big")
    )
    assert datasets_hash([]) == keccak(b"")


def test_reason_codes_are_stable() -> None:
    assert REASONS == (
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


# --------------------------------------------------------------------- refusals on a real chain


def _next_round(state: JobState, **changes: object) -> RoundRequest:
    request = RoundRequest(
        job_id=state.job_id,
        round_number=state.last_round + 1,
        job_datasets=state.job_datasets,
        base_model_cid=state.last_model_cid,
        base_digest=state.last_digest,
        spec_json=state.spec.model_dump_json(),
        seed=state.seed,
    )
    return replace(request, **changes)  # type: ignore[arg-type]


def _request(job: Job, **changes: object) -> RoundRequest:
    return _next_round(job.job, **changes)


def _refusal(job: Job, index: int, request: RoundRequest) -> NodeRefusal:
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(index))
    before, block = job.lab.get_job(job.job.job_id), job.lab.latest_block().number
    reply = node.handle(request)
    assert isinstance(reply, NodeRefusal), f"expected a refusal, got {type(reply).__name__}"
    assert (job.lab.get_job(job.job.job_id), job.lab.latest_block().number) == (before, block)
    return reply


def _subject(job: Job, index: int, purpose: str = "ai-training") -> str:
    return f"grant of dataset {job.dataset(index):#066x} to {job.lab.address} for '{purpose}'"


def test_grant_refusals_name_the_grant_and_when(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    job.owner(0).issue_grant(job.dataset(0), job.lab.address, AI_TRAINING, now, now + 60)  # type: ignore[arg-type]
    job.owner(2).issue_grant(job.dataset(2), job.lab.address, AI_TRAINING, now + 3600, now + 7200)  # type: ignore[arg-type]
    job.owner(1).revoke_grant(job.dataset(1), job.lab.address, AI_TRAINING)  # type: ignore[arg-type]
    travel(job.lab, 61)
    reply = _refusal(job, 0, _request(job))
    assert (reply.reason, reply.message) == ("expired", f"{_subject(job, 0)} expired at {_when(now + 60)}")
    reply = _refusal(job, 2, _request(job))
    assert (reply.reason, reply.message) == (
        "not_yet_valid",
        f"{_subject(job, 2)} is not valid before {_when(now + 3600)}",
    )
    reply = _refusal(job, 1, _request(job))
    assert (reply.reason, reply.message) == ("revoked", f"{_subject(job, 1)} was revoked")


def test_deed_refusals_name_the_dataset_and_owner(job: Job) -> None:
    job.owner(1).retire_dataset(job.dataset(1))
    reply = _refusal(job, 1, _request(job))
    assert (reply.reason, reply.message) == (
        "dataset_retired",
        f"dataset {job.dataset(1):#066x} was retired by its owner (consent withdrawn)",
    )
    new_owner = job.owner(2)
    job.owner(0).transfer_dataset(job.dataset(0), new_owner.address)  # type: ignore[arg-type]
    reply = _refusal(job, 0, _request(job))
    assert (reply.reason, reply.message) == (
        "not_owner",
        f"dataset {job.dataset(0):#066x} is owned by {new_owner.address}, not by this node's account "
        f"{job.owner(0).address}; the node trains only on a deed its owner holds",
    )
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node
    successor = replace(node, account=new_owner.account, client=new_owner)
    reply = successor.handle(_request(job))
    assert isinstance(reply, NodeRefusal)
    assert (reply.reason, reply.message) == (
        "owner_changed",
        f"{_subject(job, 0)} was issued by a previous owner of the deed",
    )


def test_job_refusals_name_the_job_and_digests(job: Job) -> None:
    reply = _refusal(job, 0, _request(job, job_id=99))
    assert (reply.reason, reply.message) == (
        "unknown_job",
        f"job 99 does not exist on chain {job.lab.chain_id}",
    )
    state = job.job
    not_in_job = f"dataset {job.dataset(0):#066x} is not one of job {state.job_id}'s datasets on chain"
    # the dataset left out of the list sent, or a list that is not the job's (hash) though it names it
    for datasets in (
        tuple(d for d in state.job_datasets if d != job.dataset(0)),
        (*state.job_datasets, 12345),
    ):
        reply = _refusal(job, 0, _request(job, job_datasets=datasets))
        assert (reply.reason, reply.message) == ("not_in_job", not_in_job)
    stale = bytes(32)
    reply = _refusal(job, 0, _request(job, base_digest=stale))
    assert (reply.reason, reply.message) == (
        "stale_base_model",
        f"base model digest 0x{stale.hex()} is not job {state.job_id}'s last committed digest "
        f"0x{state.last_digest.hex()} (round {state.last_round})",
    )
    other_spec = state.spec.model_copy(update={"local_epochs": state.spec.local_epochs + 1})
    reply = _refusal(job, 0, _request(job, spec_json=other_spec.model_dump_json()))
    assert (reply.reason, reply.message) == (
        "spec_mismatch",
        f"the model spec sent for job {state.job_id} hashes to 0x{other_spec.spec_digest().hex()}, but the "
        f"job's on-chain spec digest is 0x{state.spec.spec_digest().hex()}",
    )


# ----------------------------------------------------------------- the node's own refusals, no training


def test_node_refusals_of_the_request_itself(job: Job) -> None:
    reply = _refusal(job, 0, _request(job, spec_json="{not json"))
    assert reply.reason == "bad_request"
    assert reply.message.startswith("the model spec sent does not parse: 1 validation error for ModelSpec")
    other = job.store.put(b"not the base model")
    reply = _refusal(job, 0, _request(job, base_model_cid=other))
    assert (reply.reason, reply.message) == (
        "base_model_mismatch",
        f"bytes of {other} do not hash to the base digest 0x{job.job.last_digest.hex()}",
    )
    missing = cid_of(b"stored nowhere: the lab names a base model it never shared")
    reply = _refusal(job, 0, _request(job, base_model_cid=missing))
    assert reply.reason == "ledger_unavailable" and missing in reply.message


def test_node_plans_dp_with_the_parameters_sent_and_refuses_unusable_ones(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    terms = GrantTerms(epsilon=50.0, delta=1e-5)
    job.owner(0).issue_grant(job.dataset(0), job.lab.address, AI_TRAINING, now, now + 3600, terms)  # type: ignore[arg-type]
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node
    admitted = node.admit(_request(job, dp_noise_multiplier=1.3, dp_max_grad_norm=2.5))
    assert isinstance(admitted, Admission) and admitted.private is not None
    dp = admitted.private.dp
    assert (dp.noise_multiplier, dp.max_grad_norm) == pytest.approx((1.3, 2.5))
    assert (admitted.grantee, admitted.purpose) == (job.lab.address, AI_TRAINING)
    assert node.budget.history(job.lab.chain_id, job.dataset(0), job.lab.address, AI_TRAINING) == []  # type: ignore[arg-type]
    reply = _refusal(job, 0, _request(job, dp_noise_multiplier=1.3, dp_max_grad_norm=-1.0))
    assert (reply.reason, reply.message) == (
        "bad_request",
        "DP parameters: max_grad_norm is -1.0: expected a positive finite number",
    )
    # No sigma sent: the node calibrates it for the rounds the lab plans (more rounds, more noise).
    few, many = (node.admit(_request(job, dp_planned_rounds=rounds)) for rounds in (2, 200))
    assert isinstance(few, Admission) and few.private is not None
    assert isinstance(many, Admission) and many.private is not None
    assert few.private.dp.noise_multiplier < many.private.dp.noise_multiplier


def test_a_round_with_fewer_participants_than_the_grant_requires_is_refused(job: Job) -> None:
    now = job.lab.latest_block().timestamp
    terms = GrantTerms(min_participants=3)
    job.owner(0).issue_grant(job.dataset(0), job.lab.address, AI_TRAINING, now, now + 3600, terms)  # type: ignore[arg-type]
    state = job.job
    required = f"the grant of dataset {job.dataset(0):#066x} to {job.lab.address} requires at least 3"
    twice = (job.dataset(0), job.dataset(0), job.dataset(1))  # a repeated id counts once
    for participants, declared in (((), "none declared"), (twice, "2")):
        reply = _refusal(job, 0, _request(job, participants=participants))
        assert (reply.reason, reply.message) == (
            "too_few_participants",
            f"round of job {state.job_id} has {declared} participants; {required}",
        )
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node
    assert isinstance(node.admit(_request(job, participants=state.job_datasets)), Admission)


def test_a_wallet_owned_deed_admits_the_key_the_wallet_accepts_and_only_that_key(job: Job) -> None:
    signer, impostor = (job.lab.with_account(dev_account(i)) for i in (4, 5))
    wallet = deploy_contract(signer, "MockSignerWallet", str(signer.address))
    dataset_id = int.from_bytes(keccak(text="gate mutants: a wallet's dataset"), "big")
    through_wallet(signer, wallet, "DatasetRegistry", "register", [dataset_id.to_bytes(32, "big"), 0, ""])
    now = job.lab.latest_block().timestamp
    grant = [dataset_id, str(job.lab.address), AI_TRAINING, now, now + 3600]
    through_wallet(signer, wallet, "UsageGrants", "issueGrant", grant)
    spec = job.federation.spec
    state = Coordinator(job.lab, job.store).create_job(
        purpose=AI_TRAINING, datasets=[dataset_id], spec=spec, initial_state=initial_state(spec), seed=7
    )
    request = _next_round(state)
    honest = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node

    def node(client: LedgerClient, owner_wallet: str | None) -> DataOwnerNode:
        return replace(
            honest, dataset_id=dataset_id, account=client.account, client=client, owner_wallet=owner_wallet
        )

    admitted = node(signer, wallet).admit(request)
    assert isinstance(admitted, Admission) and admitted.spec_digest == spec.spec_digest()
    refused = node(impostor, wallet).admit(request)
    assert isinstance(refused, NodeRefusal) and (refused.reason, refused.message) == (
        "wallet_refuses_key",
        f"dataset {dataset_id:#066x} is owned by the wallet {wallet}, which does not accept signatures of "
        f"this node's key {impostor.address} (EIP-1271 isValidSignature)",
    )
    # a wallet configured for a deed someone else holds: the refusal names both the node's key and wallet
    elsewhere = replace(honest, account=signer.account, client=signer, owner_wallet=wallet).admit(
        _request(job)
    )
    assert isinstance(elsewhere, NodeRefusal) and (elsewhere.reason, elsewhere.message) == (
        "not_owner",
        f"dataset {job.dataset(0):#066x} is owned by {job.owner(0).address}, not by this node's account "
        f"{signer.address} or its wallet {wallet}; the node trains only on a deed its owner holds",
    )
    plain = node(signer, None).admit(request)
    assert isinstance(plain, NodeRefusal) and (plain.reason, plain.message) == (
        "not_owner",
        f"dataset {dataset_id:#066x} is owned by {wallet}, not by this node's account {signer.address}; the "
        "node trains only on a deed its owner holds",
    )
    # What the node remembers of the job is stale (a redeployed devnet reused the id, as
    # test_gate.py plays with a second chain): the job is read again, and the wallet asked again.
    key = (signer.chain_id, signer.deployment.address("TrainingLedger"), state.job_id)
    gate._job_facts[key] = (str(impostor.address), purpose_id("analytics"))
    assert isinstance(node(signer, wallet).admit(request), Admission)


def test_a_node_that_has_seen_the_job_reads_each_later_round_in_one_round_trip(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's coordinator and purpose never change, so a node reads them once (`gate._job_facts`)."""
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node
    provider = node.client.transport.provider
    assert isinstance(provider, KeepAliveHTTPProvider)  # one post per round trip, a batch is one
    posted: list[bytes] = []
    post = provider.post

    def counted(body: bytes) -> bytes:
        posted.append(body)
        return post(body)

    monkeypatch.setattr(provider, "post", counted)
    monkeypatch.setattr(gate, "_job_facts", {})
    request = _request(job)
    assert isinstance(node.admit(request), Admission)
    first = len(posted)
    assert isinstance(node.admit(request), Admission)
    # the first check reads the job, then everything else at one block; a later check, one batch
    assert (first, len(posted) - first) == (2, 1)


def test_an_open_job_admits_any_granted_dataset_without_a_list(job: Job) -> None:
    state = job.job
    job_id, _ = job.lab.create_open_job(AI_TRAINING, state.last_digest, state.spec.spec_digest())
    request = replace(_request(job, job_id=job_id), job_datasets=())
    node = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(0)).node
    admitted = node.admit(request)
    assert isinstance(admitted, Admission), admitted
    # an open job commits to no list, so none is checked, whatever the request names
    assert isinstance(node.admit(replace(request, job_datasets=(job.dataset(0),))), Admission)
