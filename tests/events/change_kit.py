"""A short federated-demo-like sequence on a devnet, done straight through the chain facade.

Two hospitals (dev1, dev2) register a dataset each and grant the lab (dev0) `ai-training`;
the lab creates a job over both and commits round 1 with both; hospital 1 revokes; the lab
commits round 2 with hospital 2 only. Every step is a real transaction on a real anvil; the
round commitments carry made-up digests (the contract checks authority and the hash chain,
not what the digests are of).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from ledger.chain.client import LedgerClient
from ledger.purposes import purpose_id

LAB, HOSPITAL_1, HOSPITAL_2 = 0, 1, 2

# The types the sequence emits, in chain order (registration emits the mint Transfer too,
# which the feed leaves to dataset.registered).
DEMO_TYPES = [
    "org.sovereign-ledger.dataset.registered",
    "org.sovereign-ledger.dataset.registered",
    "org.sovereign-ledger.grant.issued",
    "org.sovereign-ledger.grant.issued",
    "org.sovereign-ledger.job.created",
    "org.sovereign-ledger.round.committed",
    "org.sovereign-ledger.grant.revoked",
    "org.sovereign-ledger.round.committed",
]


@dataclass(frozen=True)
class DemoFacts:
    """What the sequence did, for assertions."""

    dataset_ids: tuple[int, int]
    job_id: int
    lab: str
    first_block: int
    last_block: int
    revoke_block: int


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def run_demo(clients: list[LedgerClient]) -> DemoFacts:
    """Run the sequence with `clients[i]` signing as dev account i; return its facts."""
    lab, h1, h2 = clients[LAB], clients[HOSPITAL_1], clients[HOSPITAL_2]
    assert lab.address is not None
    first = lab.latest_block().number + 1
    d1, _ = h1.register_dataset(secrets.token_bytes(32), uri="ipfs://hospital-1")
    d2, _ = h2.register_dataset(secrets.token_bytes(32), uri="ipfs://hospital-2")
    now = lab.latest_block().timestamp
    h1.issue_grant(d1, lab.address, "ai-training", now - 60, now + 86_400)
    h2.issue_grant(d2, lab.address, "ai-training", now - 60, now + 86_400)
    datasets = sorted([d1, d2])
    initial = _digest("initial")
    job_id, _ = lab.create_job("ai-training", datasets, initial, _digest("spec"))
    model1 = _digest("round-1")
    lab.commit_round(job_id, 1, initial, model1, "bafkround1", datasets, datasets, _digest("att-1"))
    revoke = h1.revoke_grant(d1, lab.address, purpose_id("ai-training"))
    model2 = _digest("round-2")
    last = lab.commit_round(job_id, 2, model1, model2, "bafkround2", datasets, [d2], _digest("att-2"))
    return DemoFacts(
        dataset_ids=(d1, d2),
        job_id=job_id,
        lab=lab.address,
        first_block=first,
        last_block=last.block_number,
        revoke_block=revoke.block_number,
    )
