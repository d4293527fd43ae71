"""Spec digests, seeded models, deterministic local training and the FedAvg baseline."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from fl_node.data import Dataset, load_dataset, make_partitions
from fl_node.model import ModelStateError, build_model, initial_state
from fl_node.simulate import federated_round, run_federated, select_nodes, state_equal, train_centralized
from fl_node.spec import ModelSpec, default_spec
from fl_node.train import TrainingError, evaluate, round_seed, train_local
from ledger.modelfile import model_to_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cancer() -> Dataset:
    return load_dataset("breast_cancer", seed=0)


def test_spec_digest_is_sha256_of_canonical_json() -> None:
    spec = ModelSpec(input_dim=4, num_classes=3, hidden=(8,))
    assert spec.canonical_json().startswith(b'{"activation":"relu","batch_size":32')
    assert spec.spec_digest() == hashlib.sha256(spec.canonical_json()).digest()
    assert len(spec.spec_digest()) == 32
    assert ModelSpec.from_json(spec.canonical_json()) == spec
    assert spec.model_copy(update={"lr": 0.1}).spec_digest() != spec.spec_digest()
    with pytest.raises(ValidationError, match="hidden layer widths must be positive"):
        ModelSpec(input_dim=4, num_classes=3, hidden=(8, 0))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ModelSpec.from_json('{"input_dim": 4, "num_classes": 3, "learning_rate": 1}')


def test_model_init_is_seeded_and_leaves_global_rng_alone() -> None:
    spec = default_spec(10, 2, seed=3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = initial_state(spec)
    assert torch.equal(torch.rand(1), expected_next)
    assert state_equal(a, initial_state(spec))
    assert not state_equal(a, initial_state(spec.model_copy(update={"seed": 4})))
    assert len(build_model(spec.model_copy(update={"hidden": (5, 6), "dropout": 0.5}))) == 7


def test_train_local_is_deterministic_and_learns(cancer: Dataset) -> None:
    ds = cancer
    spec = default_spec(ds.num_features, ds.num_classes)
    start = initial_state(spec)
    a, n, metrics = train_local(spec, start, ds.x_train, ds.y_train, round_seed=11)
    b, _, _ = train_local(spec, start, torch.as_tensor(ds.x_train), ds.y_train, round_seed=11)
    c, _, _ = train_local(spec, start, ds.x_train, ds.y_train, round_seed=12)
    assert n == ds.y_train.size and metrics["train_loss"] > 0
    assert model_to_bytes(a) == model_to_bytes(b)
    assert model_to_bytes(a) != model_to_bytes(c)
    assert state_equal(start, initial_state(spec))  # the global state is never modified
    assert evaluate(spec, a, ds.x_test, ds.y_test)["accuracy"] > 0.9


def test_train_local_bytes_identical_in_another_process_with_other_thread_settings(cancer: Dataset) -> None:
    spec = default_spec(cancer.num_features, cancer.num_classes, local_epochs=1)
    here, _, _ = train_local(spec, initial_state(spec), cancer.x_train, cancer.y_train, round_seed=9)
    code = (
        "import sys, hashlib, torch\n"
        "torch.set_num_threads(2)\n"  # a fresh process with torch's usual multi-threading
        "from fl_node.data import load_dataset\n"
        "from fl_node.model import initial_state\n"
        "from ledger.modelfile import model_to_bytes\n"
        "from fl_node.spec import ModelSpec\n"
        "from fl_node.train import train_local\n"
        "spec = ModelSpec.from_json(sys.argv[1])\n"
        "ds = load_dataset('breast_cancer', seed=0)\n"
        "state, _, _ = train_local(spec, initial_state(spec), ds.x_train, ds.y_train, round_seed=9)\n"
        "print(hashlib.sha256(model_to_bytes(state)).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, spec.canonical_json().decode()],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=180,
    )
    assert result.stdout.strip() == hashlib.sha256(model_to_bytes(here)).hexdigest()


def test_round_seeds_differ_per_node_and_round() -> None:
    seeds = {round_seed(0, r, n) for r in range(1, 20) for n in range(10)}
    assert len(seeds) == 190
    assert round_seed(0, 1, 2**255) == round_seed(0, 1, 2**255)


def test_training_errors_are_clear() -> None:
    spec = default_spec(3, 2)
    state = initial_state(spec)
    x = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(TrainingError, match="data has 5 features, the model spec expects 3"):
        train_local(spec, state, np.zeros((4, 5)), np.zeros(4), 0)
    with pytest.raises(TrainingError, match=r"labels must be in \[0, 1\], got \[0, 2\]"):
        train_local(spec, state, x, np.array([0, 1, 2, 0]), 0)
    with pytest.raises(TrainingError, match="no examples"):
        train_local(spec, state, np.zeros((0, 3)), np.zeros(0), 0)
    with pytest.raises(TrainingError, match="NaN or infinity"):
        train_local(spec, state, np.full((4, 3), np.nan), np.zeros(4), 0)
    with pytest.raises(ModelStateError, match=r"'0\.weight' has shape"):
        train_local(spec, initial_state(default_spec(4, 2)), x, np.zeros(4), 0)
    assert state_equal(state, initial_state(spec))


def test_federated_run_is_bit_identical_for_the_same_seed(cancer: Dataset) -> None:
    ds = cancer
    spec = default_spec(ds.num_features, ds.num_classes, local_epochs=1)
    seen: list[int] = []
    a = run_federated(
        spec,
        ds,
        nodes=3,
        rounds=2,
        partition="dirichlet(0.5)",
        seed=1,
        on_round=lambda r: seen.append(r.round),
    )
    b = run_federated(spec, ds, nodes=3, rounds=2, partition="dirichlet(0.5)", seed=1)
    assert seen == [1, 2]
    assert model_to_bytes(a.final_state) == model_to_bytes(b.final_state)
    # The per-round step a coordinator reuses gives the same model as the loop.
    parts = make_partitions(ds, 3, "dirichlet(0.5)", 1)
    state = initial_state(spec)
    for r in (1, 2):
        state, updates = federated_round(spec, state, parts, r, seed=1)
    assert model_to_bytes(state) == model_to_bytes(a.final_state)
    assert [u.node for u in updates] == [0, 1, 2]
    # Seeds keyed by (say) dataset ids: explicit index keys change nothing, other keys do.
    keyed = run_federated(
        spec, ds, nodes=3, rounds=2, partition="dirichlet(0.5)", seed=1, seed_keys=[0, 1, 2]
    )
    assert model_to_bytes(keyed.final_state) == model_to_bytes(a.final_state)
    other = run_federated(
        spec, ds, nodes=3, rounds=2, partition="dirichlet(0.5)", seed=1, seed_keys=[7, 8, 9]
    )
    assert model_to_bytes(other.final_state) != model_to_bytes(a.final_state)
    assert select_nodes(10, 3, seed=1, fraction=0.5) == select_nodes(10, 3, seed=1, fraction=0.5)
    assert len(select_nodes(10, 3, seed=1, fraction=0.5)) == 5


@pytest.mark.slow
def test_digits_dominant_split_reaches_095_in_20_rounds() -> None:
    ds = load_dataset("digits", seed=0)
    spec = default_spec(ds.num_features, ds.num_classes, seed=0)
    result = run_federated(spec, ds, nodes=10, rounds=20, partition="dominant", seed=0)
    central = train_centralized(spec, ds, seed=0)
    assert result.final_accuracy >= 0.95
    assert central.test_accuracy >= 0.95
    assert len(result.rounds) == 20 and result.partition_sizes[0] > 0


def test_user_csv_trains_well_without_preparation(tmp_path: Path) -> None:
    # Features on wildly different scales, a categorical column, gaps, string labels.
    rng = np.random.default_rng(1)
    lines = ["wealth_usd,temperature,ward,label"]
    for i in range(300):
        kind = ("low", "mid", "high")[i % 3]
        centre = {"low": 0.0, "mid": 1.0, "high": 2.0}[kind]
        wealth = 1e6 * (centre + rng.normal(0, 0.25))
        temp = "" if i % 11 == 0 else f"{0.001 * (centre + rng.normal(0, 0.25)):.6f}"
        ward = ("A", "B")[i % 2]
        lines.append(f"{wealth:.2f},{temp},{ward},{kind}")
    path = tmp_path / "user.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path, label="label", seed=0)
    spec = default_spec(ds.num_features, ds.num_classes)
    result = run_federated(spec, ds, nodes=3, rounds=5, partition="iid", seed=0)
    assert ds.class_names == ("high", "low", "mid")
    assert result.final_accuracy >= 0.9
