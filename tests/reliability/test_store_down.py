"""The content store is down when a round is ready: retry with backoff, never commit unstored bytes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from reliability_kit import committed, federate

from fl_node.coordinator import StoreRetryPolicy
from fl_node.errors import RoundNotCommittedError
from ledger.devnet import free_port
from ledger.provenance import model_digest
from ledger.store.kubo import KuboStore
from ledger.store.local import LocalBlockstore


def test_unreachable_ipfs_node_means_no_commit(deployed: object, tmp_path: Path) -> None:
    chain = deployed
    node_blocks = LocalBlockstore(tmp_path / "node-blocks")
    fed = federate(chain.rpc_url, chain.deployment, tmp_path, node_store=lambda _: node_blocks)  # type: ignore[attr-defined]
    job = fed.runner.create_job()
    node_blocks.put(fed.store.get(job.last_model_cid))  # the nodes hold the initial model
    dead = f"http://127.0.0.1:{free_port()}"
    coordinator = fed.runner.coordinator
    coordinator.store = KuboStore(dead, timeout=1.0)
    coordinator.store_retry = StoreRetryPolicy(attempts=3, first_delay_s=0.05)
    with pytest.raises(
        RoundNotCommittedError, match=rf"after 3 attempts .*{dead}.*the round was not committed"
    ):
        coordinator.run_round(job, fed.runner.nodes)
    assert fed.enrollment.lab.get_job(job.job_id).last_round == 0
    assert committed(fed.enrollment.lab, job.job_id) == []
    assert job.last_round == 0


def test_store_that_comes_back_gets_the_round_committed(deployed: object, tmp_path: Path) -> None:
    chain = deployed
    node_blocks = LocalBlockstore(tmp_path / "node-blocks")
    fed = federate(chain.rpc_url, chain.deployment, tmp_path, node_store=lambda _: node_blocks)  # type: ignore[attr-defined]
    job = fed.runner.create_job()
    node_blocks.put(fed.store.get(job.last_model_cid))
    # The coordinator's store directory is unusable (a file sits where it should be) ...
    broken = tmp_path / "lab-blocks"
    broken.write_text("not a directory")
    coordinator = fed.runner.coordinator
    coordinator.store = LocalBlockstore(broken)
    coordinator.store_retry = StoreRetryPolicy(attempts=8, first_delay_s=0.1, factor=1.5)

    def repair() -> None:  # ... until an operator fixes it while the coordinator backs off
        broken.unlink()
        broken.mkdir()

    timer = threading.Timer(0.4, repair)
    timer.start()
    try:
        outcome = coordinator.run_round(job, fed.runner.nodes)
    finally:
        timer.cancel()
    assert broken.is_dir()
    [event] = committed(fed.enrollment.lab, job.job_id)
    assert event["modelDigest"] == outcome.model_digest
    assert model_digest(coordinator.store.get(outcome.model_cid)) == outcome.model_digest
    assert coordinator.store.has(outcome.manifest_cid)
