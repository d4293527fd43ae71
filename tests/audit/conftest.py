"""Fixtures for the audit tests: a real anvil, the contracts, a local store and real jobs.

`world` (module scope) enrols four hospitals on breast_cancer and runs a real two-round job
with the embedded runner; tests that tamper with stored bytes work on a copy of the
blockstore. `lab` (module scope) is a chain where three hospitals granted the lab and the
lab commits rounds itself (`tests.audit.forge`): honest ones, and the lies a dishonest
coordinator would tell. `pruned_lab` is the same on an anvil that keeps no historical state.
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
from tests.audit.forge import Lab, enrol_hospital


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


def _lab(home: Path, extra_args: tuple[str, ...] = ()) -> Iterator[Lab]:
    node = start_anvil(extra_args=extra_args)
    try:
        settings = Settings(home=home, rpc_url=node.rpc_url)
        deploy_contracts(
            Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0), settings=settings
        )
        client = LedgerClient.connect(settings, dev_account(0))
        lab = Lab(node, settings, client, LocalBlockstore(settings.blockstore_dir), [])
        lab.hospitals = [enrol_hospital(lab, dev_account(i), f"hospital {i}") for i in (1, 2, 3)]
        lab.hospitals.sort(key=lambda h: h.dataset_id)
        yield lab
    finally:
        node.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Anvil + contracts + three hospitals (dev1..dev3) that granted the lab (dev0) ai-training."""
    yield from _lab(tmp_path_factory.mktemp("sov-lab"))


@pytest.fixture(scope="module")
def pruned_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The same on an anvil that keeps the state of the last 2 blocks only (a non-archive node)."""
    yield from _lab(tmp_path_factory.mktemp("sov-pruned"), ("--prune-history", "2"))


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
