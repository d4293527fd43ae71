"""Fixtures for the audit tests: a real anvil, the contracts, a local store and real jobs.

`world` (module scope) enrols four hospitals on breast_cancer and runs a real two-round job
with the embedded runner; tests that tamper with stored bytes work on a copy of the
blockstore, and tests that play a lying coordinator create their own job on the same chain.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fl_node.runner import EmbeddedRunner, Enrollment, Federation, JobRun, TrainConfig, enroll, prepare
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import NodeProcess, start_anvil
from ledger.index import EventIndex
from ledger.keys import dev_account
from ledger.settings import Settings
from ledger.store import LocalBlockstore


@dataclass
class World:
    """A chain with a finished real job, and everything needed to audit or extend it."""

    node: NodeProcess
    settings: Settings
    lab: LedgerClient
    federation: Federation
    enrollment: Enrollment
    runner: EmbeddedRunner
    store: LocalBlockstore
    run: JobRun
    job_id: int

    def index(self, path: Path) -> EventIndex:
        """A fresh index file for this chain."""
        return EventIndex(path, self.lab)

    def store_copy(self, path: Path) -> LocalBlockstore:
        """A copy of the job's content store (to tamper with)."""
        shutil.copytree(self.store.directory, path)
        return LocalBlockstore(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Anvil + contracts + 4 enrolled hospitals + a real 2-round job (breast_cancer)."""
    home = tmp_path_factory.mktemp("sov-home")
    node = start_anvil()
    try:
        settings = Settings(home=home, rpc_url=node.rpc_url)
        deploy_contracts(
            Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0), settings=settings
        )
        lab = LedgerClient.connect(settings, dev_account(0))
        config = TrainConfig(data="breast_cancer", nodes=4, rounds=2)
        federation = prepare(config)
        enrollment = enroll(lab, federation, config)
        store = LocalBlockstore(settings.blockstore_dir)
        runner = EmbeddedRunner(federation, enrollment, store, config)
        job = runner.create_job()
        run = runner.run(job)
        yield World(node, settings, lab, federation, enrollment, runner, store, run, job.job_id)
    finally:
        node.stop()
