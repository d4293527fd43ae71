"""FedAvg in one process, with no ledger: the baseline the ledger-gated job is compared to.

A round is `select_nodes -> train_round (local training per node) -> aggregate_round`,
each a plain function; `federated_round` chains them. A ledger-aware coordinator calls
the same functions with the same seeds (`train.round_seed(seed, round, node)`), so the
ledger can gate and record a round without changing a single weight of its model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ledger.aggregation import fedavg

from .data import Dataset, Partition, PartitionScheme, make_partitions
from .errors import FLError
from .model import StateDict, initial_state
from .spec import ModelSpec
from .train import configure_worker, evaluate, round_seed, train_local


@dataclass(frozen=True)
class LocalUpdate:
    """One node's result for one round."""

    node: int
    state: StateDict
    num_examples: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class RoundResult:
    """What one round produced: the new global state and its test metrics."""

    round: int
    participants: tuple[int, ...]
    num_examples: tuple[int, ...]
    state: StateDict
    test_accuracy: float
    test_loss: float
    train_loss: float
    seconds: float


@dataclass(frozen=True)
class FederatedResult:
    """A whole federated run: per-round results and the final global state."""

    spec: ModelSpec
    rounds: tuple[RoundResult, ...]
    final_state: StateDict
    seconds: float
    partition_sizes: tuple[int, ...] = field(default=())

    @property
    def final_accuracy(self) -> float:
        """Test accuracy after the last round."""
        return self.rounds[-1].test_accuracy


@dataclass(frozen=True)
class CentralizedResult:
    """Training on the pooled training split, for comparison with FedAvg."""

    state: StateDict
    test_accuracy: float
    test_loss: float
    epochs: int
    seconds: float


def select_nodes(num_nodes: int, round_number: int, seed: int, fraction: float = 1.0) -> list[int]:
    """The nodes asked to train in a round: all of them, or a seeded sample of `fraction`."""
    if num_nodes < 1:
        raise FLError(f"need at least one node, got {num_nodes}")
    if not 0 < fraction <= 1:
        raise FLError(f"selection fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(range(num_nodes))
    count = max(1, round(num_nodes * fraction))
    rng = np.random.default_rng([seed, round_number])
    return sorted(int(i) for i in rng.choice(num_nodes, size=count, replace=False))


def train_round(
    spec: ModelSpec,
    global_state: StateDict,
    partitions: Sequence[Partition],
    selected: Sequence[int],
    round_number: int,
    seed: int,
    seed_keys: Sequence[int] | None = None,
) -> list[LocalUpdate]:
    """Local training of every selected node from the same global state.

    Node i trains with `round_seed(seed, round_number, seed_keys[i])`; the key defaults to
    the partition's index. A ledger-aware runner that keys seeds by dataset id passes the
    dataset ids here to get the same weights with the ledger off.
    """
    if seed_keys is not None and len(seed_keys) != len(partitions):
        raise FLError(f"{len(seed_keys)} seed keys for {len(partitions)} partitions")
    updates = []
    for node in selected:
        part = partitions[node]
        key = part.node if seed_keys is None else seed_keys[node]
        state, count, metrics = train_local(
            spec, global_state, part.x, part.y, round_seed(seed, round_number, key)
        )
        updates.append(LocalUpdate(node=part.node, state=state, num_examples=count, metrics=metrics))
    return updates


def aggregate_round(updates: Sequence[LocalUpdate]) -> StateDict:
    """Weighted FedAvg of the round's updates, as contiguous tensors owning their memory."""
    averaged = fedavg([u.state for u in updates], [u.num_examples for u in updates])
    return {key: tensor.clone() for key, tensor in averaged.items()}


def federated_round(
    spec: ModelSpec,
    global_state: StateDict,
    partitions: Sequence[Partition],
    round_number: int,
    seed: int,
    fraction: float = 1.0,
    seed_keys: Sequence[int] | None = None,
) -> tuple[StateDict, list[LocalUpdate]]:
    """One full round without a ledger: select, train locally, aggregate."""
    selected = select_nodes(len(partitions), round_number, seed, fraction)
    updates = train_round(spec, global_state, partitions, selected, round_number, seed, seed_keys)
    return aggregate_round(updates), updates


def run_federated(
    spec: ModelSpec,
    dataset: Dataset,
    nodes: int,
    rounds: int,
    partition: str | PartitionScheme = "dominant",
    seed: int = 0,
    on_round: Callable[[RoundResult], None] | None = None,
    fraction: float = 1.0,
    seed_keys: Sequence[int] | None = None,
) -> FederatedResult:
    """FedAvg of `nodes` nodes for `rounds` rounds; evaluates the global model every round.

    Deterministic: the same arguments give bit-identical weights. `on_round` is called
    after each round (progress bars, logging); `seed_keys` as in `train_round`. Pins
    torch to one thread for the process (see `train.configure_worker`).
    """
    if rounds < 1:
        raise FLError(f"need at least one round, got {rounds}")
    configure_worker()
    started = time.perf_counter()
    partitions = make_partitions(dataset, nodes, partition, seed)
    state = initial_state(spec)
    results: list[RoundResult] = []
    for round_number in range(1, rounds + 1):
        round_started = time.perf_counter()
        state, updates = federated_round(spec, state, partitions, round_number, seed, fraction, seed_keys)
        metrics = evaluate(spec, state, dataset.x_test, dataset.y_test)
        counts = [u.num_examples for u in updates]
        train_loss = sum(u.metrics["train_loss"] * u.num_examples for u in updates) / sum(counts)
        result = RoundResult(
            round=round_number,
            participants=tuple(u.node for u in updates),
            num_examples=tuple(counts),
            state=state,
            test_accuracy=metrics["accuracy"],
            test_loss=metrics["loss"],
            train_loss=train_loss,
            seconds=time.perf_counter() - round_started,
        )
        results.append(result)
        if on_round is not None:
            on_round(result)
    return FederatedResult(
        spec=spec,
        rounds=tuple(results),
        final_state=state,
        seconds=time.perf_counter() - started,
        partition_sizes=tuple(p.num_examples for p in partitions),
    )


def train_centralized(
    spec: ModelSpec, dataset: Dataset, seed: int = 0, epochs: int = 40
) -> CentralizedResult:
    """The same model and optimiser trained on the pooled training split for `epochs` epochs."""
    configure_worker()
    started = time.perf_counter()
    pooled = spec.model_copy(update={"local_epochs": epochs})
    state, _, _ = train_local(
        pooled, initial_state(spec), dataset.x_train, dataset.y_train, round_seed(seed, 0, -1)
    )
    metrics = evaluate(spec, state, dataset.x_test, dataset.y_test)
    return CentralizedResult(
        state=state,
        test_accuracy=metrics["accuracy"],
        test_loss=metrics["loss"],
        epochs=epochs,
        seconds=time.perf_counter() - started,
    )


def state_equal(a: StateDict, b: StateDict) -> bool:
    """True when two states hold the same keys and bit-identical values."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
