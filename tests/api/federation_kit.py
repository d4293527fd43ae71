"""Builds a real federated job on a devnet for the API and browser tests.

Three hospitals (dev1..dev3) register their partitions of breast_cancer and grant the lab (dev0)
`ai-training`; the lab runs two rounds, hospital 1 revokes its grant, and the lab runs a third
round without it. Everything is real: anvil, the local content store, the embedded FL runner.
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_node.runner import EmbeddedRunner, TrainConfig, enroll, prepare
from ledger.chain.client import LedgerClient
from ledger.keys import dev_account
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import open_store

ROUNDS_BEFORE_REVOCATION = 2


@dataclass(frozen=True)
class FederatedJob:
    """What the tests assert against."""

    job_id: int
    model_cid: str
    model_cids: tuple[str, ...]
    dataset_ids: tuple[int, ...]
    revoked_dataset_id: int
    rounds: int
    lab: str
    hospital1: str


def run_federated_job(settings: Settings) -> FederatedJob:
    """Run the three-round job with a revocation before round 3; return its facts."""
    lab = LedgerClient.connect(settings, account=dev_account(0))
    config = TrainConfig(data="breast_cancer", nodes=3, rounds=ROUNDS_BEFORE_REVOCATION + 1, seed=7)
    federation = prepare(config)
    enrollment = enroll(lab, federation, config)
    runner = EmbeddedRunner(federation, enrollment, open_store(settings), config)
    job = runner.create_job()
    cids = [job.last_model_cid]
    for _ in range(ROUNDS_BEFORE_REVOCATION):
        runner.coordinator.run_round(job, runner.nodes)
        cids.append(job.last_model_cid)
    revoked = federation.dataset_ids[0]
    assert lab.address is not None
    enrollment.owners[0].revoke_grant(revoked, lab.address, purpose_id(config.purpose))
    runner.coordinator.run_round(job, runner.nodes)
    cids.append(job.last_model_cid)
    return FederatedJob(
        job_id=job.job_id,
        model_cid=job.last_model_cid,
        model_cids=tuple(cids),
        dataset_ids=tuple(federation.dataset_ids),
        revoked_dataset_id=revoked,
        rounds=job.last_round,
        lab=lab.address,
        hospital1=str(enrollment.owners[0].address),
    )
