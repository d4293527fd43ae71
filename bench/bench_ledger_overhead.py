"""What the ledger costs federated learning: the digits job with the ledger on and off.

Both runs use the same data, partitions, seeds and learning code; the ledger run adds
the nodes' on-chain gates, attestations, content-store anchoring and round commits on
a fresh anvil. Reports the wall-time ratio, the per-round ledger cost, whether the two
final models are byte-identical, and the accuracies (federated and centralised).
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fl_node.coordinator import JobState
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
# A workload whose round takes about a second on 2 cores (10 nodes, a 590k-parameter MLP on
# the same digits), where a real federation's training time dominates.
REALISTIC = TrainConfig(
    data="digits",
    nodes=10,
    rounds=5,
    partition="dominant",
    seed=0,
    spec_overrides={"hidden": (768, 768), "local_epochs": 2},
)
REALISTIC_REPEATS = 2


FLOOR_ROUNDS = 10


def _floor_ms(lab: LedgerClient, job: JobState, datasets: list[int]) -> float:
    """A round's chain work done directly with the client, on the anvil the job ran on.

    The batched reads a round makes (each dataset's state, each grant's status) and one
    commit transaction with its receipt, for rounds after the job's last; median ms.
    """
    assert lab.address is not None
    times = []
    digest = job.last_digest
    for number in range(job.last_round + 1, job.last_round + 1 + FLOOR_ROUNDS):
        started = time.perf_counter()
        lab.dataset_states(datasets)
        lab.authorization_statuses(datasets, lab.address, job.purpose)
        following = hashlib.sha256(digest).digest()
        lab.commit_round(
            job.job_id,
            number,
            digest,
            following,
            job.last_model_cid,
            job.job_datasets,
            datasets,
            hashlib.sha256(following).digest(),
        )
        times.append(time.perf_counter() - started)
        digest = following
    return statistics.median(times) * 1000


PHASES: dict[str, list[float]] = {}


def _ledger_run(home: Path, config: TrainConfig = CONFIG) -> tuple[float, bytes, float]:
    node = start_anvil()
    try:
        deployment = deploy_contracts(Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0))
        lab = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        federation = prepare(config)
        enrollment = enroll(lab, federation, config)
        runner = EmbeddedRunner(federation, enrollment, LocalBlockstore(home / "blocks"), config)
        started = time.perf_counter()
        job = runner.create_job()
        run = runner.run(job)
        seconds = time.perf_counter() - started
        for outcome in run.rounds if config is CONFIG else ():
            for phase, spent in outcome.timings.items():
                PHASES.setdefault(phase, []).append(spent * 1000)
        floor = _floor_ms(lab, run.job, sorted(job.job_datasets))
        return seconds, run.final_model_bytes, floor
    finally:
        node.stop()


def _offline_run(config: TrainConfig = CONFIG) -> tuple[float, bytes]:
    federation = prepare(config)
    started = time.perf_counter()
    model = run_offline(federation, config.rounds, config.seed)
    return time.perf_counter() - started, model


def run() -> dict[str, Any]:
    """Median wall times over alternating repeats (after one warm-up of each)."""
    federation = prepare(CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        _offline_run()  # warm-up: imports, allocator, data loading
        on, off, floors = [], [], []
        ledger_bytes = offline_bytes = b""
        for repeat in range(REPEATS):
            seconds, ledger_bytes, floor = _ledger_run(Path(tmp) / f"run-{repeat}")
            on.append(seconds)
            floors.append(floor)
            seconds, offline_bytes = _offline_run()
            off.append(seconds)
        real_on, real_off = [], []
        real_identical = True
        for repeat in range(REALISTIC_REPEATS):
            seconds, real_ledger, _ = _ledger_run(Path(tmp) / f"realistic-{repeat}", REALISTIC)
            real_on.append(seconds)
            seconds, real_offline = _offline_run(REALISTIC)
            real_off.append(seconds)
            real_identical = real_identical and real_ledger == real_offline
    with_ledger, without = statistics.median(on), statistics.median(off)
    accuracy = evaluate(
        federation.spec, model_from_bytes(ledger_bytes), federation.dataset.x_test, federation.dataset.y_test
    )["accuracy"]
    per_round_ms = (with_ledger - without) / CONFIG.rounds * 1000
    floor_ms = statistics.median(floors)
    return {
        "ledger_overhead_ratio": round(with_ledger / without, 3),
        "ledger_ms_per_round": round(per_round_ms, 1),
        "ledger_floor_ms_per_round": round(floor_ms, 1),
        "ledger_round_vs_floor": round(per_round_ms / floor_ms, 2),
        # Where a ledger round's time goes (median ms per round; collect includes training).
        "ledger_round_phase_ms": {p: round(statistics.median(v), 1) for p, v in sorted(PHASES.items())},
        "ledger_overhead_ratio_realistic": round(statistics.median(real_on) / statistics.median(real_off), 3),
        "realistic_round_seconds_without_ledger": round(statistics.median(real_off) / REALISTIC.rounds, 3),
        "model_identical_with_ledger_realistic": real_identical,
        "digits_job_seconds_with_ledger": round(with_ledger, 2),
        "digits_job_seconds_without_ledger": round(without, 2),
        "model_identical_with_ledger": ledger_bytes == offline_bytes,
        "ledger_run_digits_accuracy_r20": round(accuracy, 4),
    }
