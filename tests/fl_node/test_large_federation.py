"""A federation past the participant bitmask, end to end on a real anvil: 300 datasets.

The coordinator is handed 300 datasets, so it creates an open job and commits the round in
batches; every node is a real key (the deed owner's) signing a real v2 attestation over a real
model file, and the audit of the job verifies from the chain's logs and the store alone.
Training itself is not the point here (it is the same code as for 3 nodes), so each node
returns a fixed update: the round's FedAvg is still recomputed by the audit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fl_node.coordinator import Coordinator
from fl_node.messages import NodeReply, NodeUpdate, RoundRequest
from fl_node.model import initial_state
from fl_node.runner import Federation
from fl_node.spec import ModelSpec
from ledger.audit import audit
from ledger.index import EventIndex
from ledger.modelfile import model_to_bytes
from ledger.participants import DEFAULT_BATCH, MASK_CAPACITY
from ledger.provenance import Attestation, sign_attestation
from ledger.purposes import purpose_id
from ledger.store.local import LocalBlockstore
from tests.conftest import DeployedChain

AI = purpose_id("ai-training")
DATASETS = 300


class AttestingNode:
    """A node that returns its fixed update, attested by the dataset owner's key."""

    def __init__(self, chain: DeployedChain, dataset_id: int, update: bytes, num_examples: int) -> None:
        self.owner = chain[1]
        self.dataset_id = dataset_id
        self.update, self.num_examples = update, num_examples

    def handle(self, request: RoundRequest) -> NodeReply:
        attestation = Attestation(
            job_id=request.job_id,
            round=request.round_number,
            dataset_id=self.dataset_id,
            base_digest=request.base_digest,
            spec_digest=ModelSpec.model_validate_json(request.spec_json).spec_digest(),
            update_digest=hashlib.sha256(self.update).digest(),
            num_examples=self.num_examples,
        )
        signed = sign_attestation(
            self.owner.account,  # type: ignore[arg-type]
            self.owner.chain_id,
            self.owner.deployment.address("TrainingLedger"),
            attestation,
        )
        return NodeUpdate(self.dataset_id, self.update, self.num_examples, signed)


def test_a_round_of_300_datasets_is_committed_in_batches_and_verifies(
    deployed: DeployedChain, federation: Federation, tmp_path: Path
) -> None:
    lab, owner = deployed[0], deployed[1]
    now = lab.latest_block().timestamp
    ids = []
    for i in range(DATASETS):
        dataset_id, _ = owner.register_dataset(hashlib.sha256(f"phone {i}".encode()).digest())
        owner.issue_grant(dataset_id, lab.address or "", AI, now, now + 86400)
        ids.append(dataset_id)
    store = LocalBlockstore(tmp_path / "blocks")
    coordinator = Coordinator(lab, store)
    spec = federation.spec
    state = initial_state(spec)
    job = coordinator.create_job(purpose=AI, datasets=ids, spec=spec, initial_state=state, seed=1)  # type: ignore[arg-type]
    assert len(ids) > MASK_CAPACITY and job.job_datasets == ()
    # Two distinct updates, so the weighted average is a real computation the audit redoes.
    halves = [
        model_to_bytes({k: v + 0.01 * (j + 1) for k, v in state.items()})  # type: ignore[operator]
        for j in range(2)
    ]
    nodes = [AttestingNode(deployed, d, halves[i % 2], 10 + i % 7) for i, d in enumerate(ids)]
    outcome = coordinator.run_round(job, nodes)
    assert outcome.participants == tuple(sorted(ids)) and outcome.refused == {}

    events = lab.get_logs(lab.deployment.deployed_block)
    batches = [e for e in events if e.name == "RoundParticipantsAdded" and e.args["jobId"] == job.job_id]
    assert DATASETS <= DEFAULT_BATCH  # one batch of 300 (the batching itself: test_large_round_client.py)
    assert [len(e.args["participants"]) for e in batches] == [DATASETS]
    [large] = [e for e in events if e.name == "LargeRoundCommitted" and e.args["jobId"] == job.job_id]
    assert large.args["participantCount"] == DATASETS

    report = audit(str(job.job_id), client=lab, index=EventIndex(tmp_path / "index.sqlite", lab), store=store)
    assert report.ok, [c.message for c in report.failures][:5]
    counts = report.counts()
    assert counts["grant"] == (DATASETS, 0, 0) and counts["attestation"] == (DATASETS, 0, 0)
    assert counts["large-round"] == (1, 0, 0) and counts["aggregation"] == (1, 0, 0)
