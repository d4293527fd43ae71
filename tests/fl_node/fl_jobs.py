"""Helpers for the ledger-gated learning tests."""

from __future__ import annotations

from dataclasses import dataclass

from fl_node.coordinator import JobState
from fl_node.runner import EmbeddedRunner, Enrollment, Federation, TrainConfig
from ledger.chain.client import LedgerClient
from ledger.store.local import LocalBlockstore

CONFIG = TrainConfig(data="breast_cancer", nodes=3, rounds=2, partition="iid", seed=7)


@dataclass
class Job:
    """An enrolled federation with a created job, ready to run rounds."""

    federation: Federation
    enrollment: Enrollment
    runner: EmbeddedRunner
    job: JobState
    store: LocalBlockstore

    @property
    def lab(self) -> LedgerClient:
        return self.enrollment.lab

    def owner(self, index: int) -> LedgerClient:
        return self.enrollment.owners[index]

    def dataset(self, index: int) -> int:
        return self.federation.dataset_ids[index]


def travel(client: LedgerClient, seconds: int) -> None:
    """Moves the devnet's clock forward and mines a block."""
    client.transport.request("evm_increaseTime", [seconds])
    client.transport.request("evm_mine", [])
