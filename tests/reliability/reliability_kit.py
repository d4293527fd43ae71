"""Helpers for the fault-injection tests: a small federation on a chain the test controls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fl_node.runner import EmbeddedRunner, Enrollment, Federation, TrainConfig, enroll, prepare
from ledger.chain.client import LedgerClient
from ledger.deploy import Deployment
from ledger.keys import dev_account
from ledger.store import ContentStore
from ledger.store.local import LocalBlockstore

CONFIG = TrainConfig(data="breast_cancer", nodes=3, rounds=4, partition="iid", seed=3)


@dataclass
class Federated:
    """An enrolled federation and its runner."""

    federation: Federation
    enrollment: Enrollment
    runner: EmbeddedRunner
    store: ContentStore


def federate(
    rpc_url: str,
    deployment: Deployment,
    home: Path,
    config: TrainConfig = CONFIG,
    node_store: Callable[[int], ContentStore] | None = None,
) -> Federated:
    """Hospitals dev1.. register and grant the lab dev0; returns a runner over a local store."""
    lab = LedgerClient.from_url(rpc_url, deployment, dev_account(0))
    federation = prepare(config)
    enrollment = enroll(lab, federation, config)
    store = LocalBlockstore(home / "blocks")
    runner = EmbeddedRunner(federation, enrollment, store, config, node_store=node_store)
    return Federated(federation, enrollment, runner, store)


def committed(client: LedgerClient, job_id: int) -> list[dict[str, object]]:
    """The job's RoundCommitted events, in chain order."""
    return [
        e.args
        for e in client.get_logs(client.deployment.deployed_block)
        if e.name == "RoundCommitted" and e.args["jobId"] == job_id
    ]
