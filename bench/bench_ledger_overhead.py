"""What the ledger costs federated learning: the digits job with the ledger on and off.

Both runs use the same data, partitions, seeds and learning code; the ledger run adds
the nodes' on-chain gates, attestations, content-store anchoring and round commits on
a fresh anvil. Reports the wall-time ratio, the per-round ledger cost, whether the two
final models are byte-identical, and the accuracies (federated and centralised).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fl_node.runner import EmbeddedRunner, TrainConfig, enroll, prepare, run_offline
from fl_node.train import evaluate
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.keys import dev_account
from ledger.modelfile import model_from_bytes
from ledger.store.local import LocalBlockstore

CONFIG = TrainConfig(data="digits", nodes=10, rounds=20, partition="dominant", seed=0)
REPEATS = 3


def _ledger_run(home: Path) -> tuple[float, bytes]:
    node = start_anvil()
    try:
        deployment = deploy_contracts(Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0))
        lab = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        federation = prepare(CONFIG)
        enrollment = enroll(lab, federation, CONFIG)
        runner = EmbeddedRunner(federation, enrollment, LocalBlockstore(home / "blocks"), CONFIG)
        started = time.perf_counter()
        job = runner.create_job()
        run = runner.run(job)
        return time.perf_counter() - started, run.final_model_bytes
    finally:
        node.stop()


def _offline_run() -> tuple[float, bytes]:
    federation = prepare(CONFIG)
    started = time.perf_counter()
    model = run_offline(federation, CONFIG.rounds, CONFIG.seed)
    return time.perf_counter() - started, model


def run() -> dict[str, Any]:
    """Median wall times over alternating repeats (after one warm-up of each)."""
    federation = prepare(CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        _offline_run()  # warm-up: imports, allocator, data loading
        on, off = [], []
        ledger_bytes = offline_bytes = b""
        for repeat in range(REPEATS):
            seconds, ledger_bytes = _ledger_run(Path(tmp) / f"run-{repeat}")
            on.append(seconds)
            seconds, offline_bytes = _offline_run()
            off.append(seconds)
    with_ledger, without = statistics.median(on), statistics.median(off)
    accuracy = evaluate(
        federation.spec, model_from_bytes(ledger_bytes), federation.dataset.x_test, federation.dataset.y_test
    )["accuracy"]
    return {
        "ledger_overhead_ratio": round(with_ledger / without, 3),
        "ledger_ms_per_round": round((with_ledger - without) / CONFIG.rounds * 1000, 1),
        "digits_job_seconds_with_ledger": round(with_ledger, 2),
        "digits_job_seconds_without_ledger": round(without, 2),
        "model_identical_with_ledger": ledger_bytes == offline_bytes,
        "ledger_run_digits_accuracy_r20": round(accuracy, 4),
    }
