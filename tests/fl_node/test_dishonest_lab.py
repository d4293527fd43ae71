"""A dishonest lab against real parts: squatted deeds, swapped specs, wallets, withheld context.

Each attack runs on a real anvil with a real local content store and real signatures. The
node (or the coordinator's verification, for updates a dishonest party forged) must refuse
with a stable reason and a message that names the offending values, and the chain must not
move: same block number, same job record.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from fl_jobs import Job, deploy_contract, through_wallet

from fl_node.coordinator import Coordinator, JobState
from fl_node.errors import QuorumError
from fl_node.messages import NodeRefusal, NodeReply, NodeUpdate, RoundRequest
from fl_node.model import initial_state
from fl_node.node import Admission, DataOwnerNode
from fl_node.runner import Federation, LocalNode
from ledger.aggregation import aggregate_updates
from ledger.chain.client import LedgerClient
from ledger.chain.types import JobRecord
from ledger.provenance import RoundManifest, model_digest, sign_attestation
from ledger.purposes import purpose_id
from ledger.store.local import LocalBlockstore
from tests.conftest import DeployedChain

AI = purpose_id("ai-training")


@dataclass
class WatchedNode(DataOwnerNode):
    """A real node that records every round it actually trained."""

    trained: list[int] = field(default_factory=list)

    def train(self, request: RoundRequest, admitted: Admission) -> NodeReply:
        self.trained.append(request.round_number)
        return super().train(request, admitted)


def request_for(job: JobState, spec_json: str | None = None) -> RoundRequest:
    return RoundRequest(
        job_id=job.job_id,
        round_number=job.last_round + 1,
        job_datasets=job.job_datasets,
        base_model_cid=job.last_model_cid,
        base_digest=job.last_digest,
        spec_json=job.spec.model_dump_json() if spec_json is None else spec_json,
        seed=job.seed,
    )


def node_for(
    federation: Federation,
    index: int,
    client: LedgerClient,
    store: LocalBlockstore,
    owner_wallet: str | None = None,
) -> WatchedNode:
    partition = federation.partitions[index]
    return WatchedNode(
        dataset_id=federation.dataset_ids[index],
        features=partition.x,
        labels=partition.y,
        account=client.account,  # type: ignore[arg-type]
        client=client,
        store=store,
        owner_wallet=owner_wallet,
    )


@dataclass(frozen=True)
class ChainMark:
    """What must not move while a refusal happens."""

    block: int
    job: JobRecord

    @classmethod
    def of(cls, client: LedgerClient, job_id: int) -> ChainMark:
        return cls(client.latest_block().number, client.get_job(job_id))


def refused(node: WatchedNode, request: RoundRequest, lab: LedgerClient) -> NodeRefusal:
    before = ChainMark.of(lab, request.job_id)
    reply = node.handle(request)
    assert isinstance(reply, NodeRefusal), f"expected a refusal, got {type(reply).__name__}"
    assert node.trained == []
    assert ChainMark.of(lab, request.job_id) == before
    return reply


def new_job(
    lab: LedgerClient, store: LocalBlockstore, federation: Federation, datasets: list[int]
) -> JobState:
    coordinator = Coordinator(lab, store)
    return coordinator.create_job(
        purpose=AI,
        datasets=datasets,
        spec=federation.spec,
        initial_state=initial_state(federation.spec),  # type: ignore[arg-type]
        seed=7,
    )


# ----------------------------------------------------------------------------- (i) squatted deed


def test_lab_that_registered_the_hospitals_hash_first_cannot_make_its_node_train(
    deployed: DeployedChain, federation: Federation, tmp_path: Path
) -> None:
    lab, hospital = deployed[0], deployed[1]
    store = LocalBlockstore(tmp_path / "blocks")
    stolen = federation.dataset_ids[0]
    # The lab registers the hospital's content hash under its own key and grants itself.
    lab.register_dataset(stolen.to_bytes(32, "big"), uri="sov://squatted")
    now = lab.latest_block().timestamp
    lab.issue_grant(stolen, str(lab.address), AI, now, now + 3600)
    assert lab.is_authorized(stolen, str(lab.address), AI)  # the contract alone sees nothing wrong
    job = new_job(lab, store, federation, [stolen])

    node = node_for(federation, 0, hospital, store)
    reply = refused(node, request_for(job), lab)
    assert reply.reason == "not_owner"
    assert (
        f"dataset {stolen:#066x} is owned by {lab.address}, not by this node's account {hospital.address}"
        in reply.message
    )
    # Run as a whole round, the lab gets nothing to commit.
    before = ChainMark.of(lab, job.job_id)
    with pytest.raises(QuorumError, match=r"0 valid update\(s\).*not_owner: dataset"):
        Coordinator(lab, store).run_round(job, [node])
    assert node.trained == []
    assert ChainMark.of(lab, job.job_id) == before
    assert before.job.last_round == 0


# ----------------------------------------------------------------------------- (ii) another spec


def test_spec_other_than_the_jobs_is_refused(job: Job) -> None:
    honest = job.runner.nodes[0].node
    node = node_for(
        job.federation, job.federation.dataset_ids.index(honest.dataset_id), honest.client, job.store
    )
    swapped = job.job.spec.model_copy(update={"lr": 0.5, "local_epochs": 9})
    reply = refused(node, request_for(job.job, swapped.model_dump_json()), job.lab)
    assert reply.reason == "spec_mismatch"
    assert (
        f"the model spec sent for job {job.job.job_id} hashes to 0x{swapped.spec_digest().hex()}, but the "
        f"job's on-chain spec digest is 0x{job.job.spec.spec_digest().hex()}"
    ) in reply.message
    # The same spec written differently (key order, spacing) is the same spec and trains.
    reordered = json.dumps(dict(reversed(json.loads(job.job.spec.model_dump_json()).items())), indent=1)
    assert reordered != job.job.spec.model_dump_json()
    assert isinstance(node.handle(request_for(job.job, reordered)), NodeUpdate)
    assert node.trained == [1]


def test_lab_running_a_round_with_another_spec_commits_nothing(job: Job) -> None:
    swapped = replace(job.job, spec=job.job.spec.model_copy(update={"hidden": (8,)}))
    before = ChainMark.of(job.lab, job.job.job_id)
    with pytest.raises(QuorumError, match=r"0 valid update\(s\)") as raised:
        job.runner.coordinator.run_round(swapped, job.runner.nodes)
    assert str(raised.value).count("spec_mismatch: the model spec sent") == 3
    assert ChainMark.of(job.lab, job.job.job_id) == before


# ----------------------------------------------------------------------------- (iii) EIP-1271 owner


@dataclass
class WalletWorld:
    lab: LedgerClient
    store: LocalBlockstore
    wallet: str
    dataset_id: int
    job: JobState


@pytest.fixture()
def wallet_world(deployed: DeployedChain, federation: Federation, tmp_path: Path) -> WalletWorld:
    """Dataset 0 held by a hospital's contract wallet whose signer is dev4; granted to the lab."""
    lab, signer = deployed[0], deployed[4]
    wallet = deploy_contract(signer, "MockSignerWallet", str(signer.address))
    dataset_id = federation.dataset_ids[0]
    through_wallet(
        signer, wallet, "DatasetRegistry", "register", [dataset_id.to_bytes(32, "big"), 0, "sov://w"]
    )
    assert lab.dataset_state(dataset_id).owner == wallet
    now = lab.latest_block().timestamp
    through_wallet(
        signer, wallet, "UsageGrants", "issueGrant", [dataset_id, str(lab.address), AI, now, now + 3600]
    )
    store = LocalBlockstore(tmp_path / "blocks")
    return WalletWorld(lab, store, wallet, dataset_id, new_job(lab, store, federation, [dataset_id]))


def test_wallet_owned_dataset_trains_and_its_attestation_is_accepted(
    wallet_world: WalletWorld, deployed: DeployedChain, federation: Federation
) -> None:
    w = wallet_world
    node = node_for(federation, 0, deployed[4], w.store, owner_wallet=w.wallet)
    outcome = Coordinator(w.lab, w.store).run_round(w.job, [node])
    assert outcome.participants == (w.dataset_id,)
    assert node.trained == [1]
    assert w.lab.get_job(w.job.job_id).last_digest == outcome.model_digest
    manifest = RoundManifest.from_bytes(w.store.get(outcome.manifest_cid))
    [participant] = manifest.participants
    assert participant.node == deployed[4].address  # the key that signed, vouched for by the wallet


def test_node_key_the_wallet_does_not_accept_is_refused(
    wallet_world: WalletWorld, deployed: DeployedChain, federation: Federation
) -> None:
    w = wallet_world
    impostor = node_for(federation, 0, deployed[5], w.store, owner_wallet=w.wallet)
    reply = refused(impostor, request_for(w.job), w.lab)
    assert reply.reason == "wallet_refuses_key"
    assert (
        f"is owned by the wallet {w.wallet}, which does not accept signatures of this node's key "
        f"{deployed[5].address}"
    ) in reply.message
    # Without a wallet configured, the wallet is simply not the node's account.
    plain = node_for(federation, 0, deployed[4], w.store)
    reply = refused(plain, request_for(w.job), w.lab)
    assert reply.reason == "not_owner"
    assert f"is owned by {w.wallet}, not by this node's account {deployed[4].address}" in reply.message


class ResignedBy:
    """Forwards a node's real update, re-signed by another key (a forged or altered attestation)."""

    def __init__(self, inner: DataOwnerNode | LocalNode, key: LedgerClient, **change: bytes) -> None:
        self.inner, self.key, self.change = inner, key, change
        self.dataset_id = inner.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        reply = self.inner.handle(request)
        assert isinstance(reply, NodeUpdate)
        signed = sign_attestation(
            self.key.account,  # type: ignore[arg-type]
            self.key.chain_id,
            self.key.deployment.address("TrainingLedger"),
            replace(reply.attestation.attestation, **self.change),  # type: ignore[arg-type]
        )
        return replace(reply, attestation=signed)


def test_update_for_a_wallet_owned_dataset_signed_by_another_key_is_rejected(
    wallet_world: WalletWorld, deployed: DeployedChain, federation: Federation
) -> None:
    w = wallet_world
    forged = ResignedBy(node_for(federation, 0, deployed[4], w.store, owner_wallet=w.wallet), deployed[5])
    before = ChainMark.of(w.lab, w.job.job_id)
    with pytest.raises(QuorumError) as raised:
        Coordinator(w.lab, w.store).run_round(w.job, [forged])
    assert (
        f"rejected update: attestation signed by {deployed[5].address}, not by the dataset owner {w.wallet} "
        "(nor accepted by it as an EIP-1271 wallet)"
    ) in str(raised.value)
    assert ChainMark.of(w.lab, w.job.job_id) == before


# ----------------------------------------------------------------------------- (iv) recomputable


def recompute(manifest: RoundManifest, store: LocalBlockstore) -> bytes:
    updates = [store.get(cid) for cid in manifest.update_cids()]
    for participant, data in zip(manifest.participants, updates, strict=True):
        assert hashlib.sha256(data).digest() == participant.update_digest
    return model_digest(aggregate_updates(updates, [p.num_examples for p in manifest.participants]))


def test_manifest_update_cids_recompute_the_committed_model(job: Job, tmp_path: Path) -> None:
    outcome = job.runner.coordinator.run_round(job.job, job.runner.nodes)
    manifest_cid = outcome.manifest_cid
    manifest = RoundManifest.from_bytes(job.store.get(manifest_cid))
    assert manifest.update_cids() == [outcome.update_cids[d] for d in sorted(outcome.participants)]
    assert set(manifest.update_cids()) <= set(job.store.pins())
    on_chain = job.lab.get_job(job.job.job_id).last_digest
    assert recompute(manifest, job.store) == manifest.model_digest == on_chain
    # An auditor handed the job's CAR recomputes it from an empty store.
    car = io.BytesIO()
    job.store.export_car([manifest_cid, *manifest.update_cids()], car)
    auditor = LocalBlockstore(tmp_path / "auditor")
    car.seek(0)
    auditor.import_car(car)
    assert recompute(RoundManifest.from_bytes(auditor.get(manifest_cid)), auditor) == on_chain


class RevokedAfterTraining:
    def __init__(self, inner: LocalNode, owner: LedgerClient, lab: str) -> None:
        self.inner, self.owner, self.lab = inner, owner, lab
        self.dataset_id = inner.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        reply = self.inner.handle(request)
        self.owner.revoke_grant(self.dataset_id, self.lab, AI)
        return reply


def test_round_recomputed_without_a_dropped_dataset_lists_only_the_rest(job: Job) -> None:
    late = job.dataset(1)
    nodes = [
        RevokedAfterTraining(n, job.owner(1), str(job.lab.address)) if n.dataset_id == late else n
        for n in job.runner.nodes
    ]
    outcome = job.runner.coordinator.run_round(job.job, nodes)
    assert outcome.recomputed_without == (late,)
    manifest = RoundManifest.from_bytes(job.store.get(outcome.manifest_cid))
    assert late not in [p.dataset_id for p in manifest.participants]
    assert len(manifest.update_cids()) == 2
    assert recompute(manifest, job.store) == job.lab.get_job(job.job.job_id).last_digest


# ----------------------------------------------------------------------------- (v) base/spec binding


@pytest.mark.parametrize(
    ("field_name", "message"),
    [
        (
            "base_digest",
            "attestation names base model 0x{forged}, but round 1 builds on 0x{round_value} "
            "(job {job}'s last committed digest)",
        ),
        (
            "spec_digest",
            "attestation names spec digest 0x{forged}, but job {job}'s spec digest is 0x{round_value}",
        ),
    ],
)
def test_attestation_for_another_base_or_spec_is_rejected(job: Job, field_name: str, message: str) -> None:
    index = 2
    honest = next(n for n in job.runner.nodes if n.dataset_id == job.dataset(index))
    forged_value = hashlib.sha256(b"a model the lab would rather have trained on").digest()
    # Signed by the dataset's real owner: only the bound context is wrong.
    altered = ResignedBy(honest, job.owner(index), **{field_name: forged_value})
    round_value = job.job.last_digest if field_name == "base_digest" else job.job.spec.spec_digest()
    expected = message.format(forged=forged_value.hex(), round_value=round_value.hex(), job=job.job.job_id)
    reply = altered.handle(request_for(job.job))
    assert isinstance(reply, NodeUpdate)
    assert job.runner.coordinator.verify_update(request_for(job.job), reply) == expected
    strict = Coordinator(job.lab, job.store, quorum=3)
    nodes = [altered if n.dataset_id == honest.dataset_id else n for n in job.runner.nodes]
    before = ChainMark.of(job.lab, job.job.job_id)
    with pytest.raises(QuorumError, match=r"2 valid update\(s\), quorum is 3") as raised:
        strict.run_round(job.job, nodes)
    assert f"rejected update: {expected}" in str(raised.value)
    assert ChainMark.of(job.lab, job.job.job_id) == before
