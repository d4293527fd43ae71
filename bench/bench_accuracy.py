"""FedAvg accuracy on `digits`, 10 nodes with 80% of one class each, vs centralised training.

Runs the default spec (`fl_node.spec.default_spec`) and, for reference, the seed's recipe
(SGD lr 0.01, 5 local epochs, 128-64 MLP, dropout 0.5) on the same split and seed.

Run: `PYTHONPATH=. .venv/bin/python bench/bench_accuracy.py`
"""

from __future__ import annotations

import json
import time
from typing import Any

from fl_node.data import load_dataset
from fl_node.simulate import run_federated, train_centralized
from fl_node.spec import default_spec

NODES = 10
ROUNDS = 20


def run(seed: int = 0, include_seed_recipe: bool = True) -> dict[str, Any]:
    """Measure and return the accuracy keys of `bench/results.json`."""
    dataset = load_dataset("digits", seed=seed)
    spec = default_spec(dataset.num_features, dataset.num_classes, seed=seed)
    started = time.perf_counter()
    cpu_started = time.process_time()
    federated = run_federated(spec, dataset, nodes=NODES, rounds=ROUNDS, partition="dominant", seed=seed)
    fed_seconds = time.perf_counter() - started
    fed_cpu_seconds = time.process_time() - cpu_started
    central = train_centralized(spec, dataset, seed=seed)
    by_round = [r.test_accuracy for r in federated.rounds]
    results: dict[str, Any] = {
        "fedavg_digits_accuracy_r20": federated.final_accuracy,
        "fedavg_digits_accuracy_r5": by_round[4],
        "fedavg_digits_accuracy_r10": by_round[9],
        "fedavg_digits_first_round_at_095": next((i + 1 for i, a in enumerate(by_round) if a >= 0.95), None),
        "fedavg_digits_seconds": fed_seconds,
        # CPU seconds of this process: the wall time above includes waiting for a shared CPU.
        "fedavg_digits_cpu_seconds": fed_cpu_seconds,
        "centralized_digits_accuracy": central.test_accuracy,
        "centralized_digits_seconds": central.seconds,
        "fedavg_digits_spec": json.loads(spec.canonical_json()),
    }
    if include_seed_recipe:
        seed_spec = spec.model_copy(
            update={"optimizer": "sgd", "lr": 0.01, "local_epochs": 5, "hidden": (128, 64), "dropout": 0.5}
        )
        baseline = run_federated(
            seed_spec, dataset, nodes=NODES, rounds=ROUNDS, partition="dominant", seed=seed
        )
        results["fedavg_digits_accuracy_r20_seed_recipe"] = baseline.final_accuracy
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
