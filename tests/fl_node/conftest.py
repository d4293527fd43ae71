"""Fixtures for the ledger-gated learning tests: a small real federation on a real anvil."""

from __future__ import annotations

from pathlib import Path

import pytest
from fl_jobs import CONFIG, Job

from fl_node.runner import EmbeddedRunner, Federation, enroll, prepare
from ledger.store.local import LocalBlockstore


@pytest.fixture(scope="session")
def federation() -> Federation:
    """Three partitions of breast_cancer (the data is the same in every test)."""
    return prepare(CONFIG)


@pytest.fixture()
def job(deployed: object, federation: Federation, tmp_path: Path) -> Job:
    """Three hospitals (dev1..dev3) registered and granted the lab (dev0) for a day; a job created."""
    lab = deployed[0]  # type: ignore[index]
    enrollment = enroll(lab, federation, CONFIG)
    store = LocalBlockstore(tmp_path / "blocks")
    runner = EmbeddedRunner(federation, enrollment, store, CONFIG)
    return Job(federation, enrollment, runner, runner.create_job(), store)
