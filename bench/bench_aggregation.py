"""FedAvg throughput: ours vs the seed's per-parameter loop vs Flower's `aggregate`.

10 clients x 10M float32 parameters (a 20-block model: 700x700 weights, biases, norms,
and a head), weights = example counts. Every implementation gets the updates in its
native form, built before timing: ours the model files the nodes sent, through the
coordinator's own path (`StreamingFedAvg`: offered as they arrive, folded into the committed
model file, serialisation included; `fedavg_flat` alone is `aggregation_flat_kernel_s`) over
zero-copy flat views of them (`modelfile.flat_from_bytes`: a safetensors file of float32 tensors is one
contiguous buffer in sorted-key order), the seed loop state dicts, Flower lists of
ndarrays. We also time ours from state dicts (`aggregation.fedavg`, blocked multi-tensor
ops, no flat copies) and a plain tensor copy of the same bytes, the memory-bandwidth
yardstick. Median of repeats after a warm-up. Everything runs on one thread
(torch.set_num_threads(1)): Flower's numpy code is single-threaded, and on a shared
2-core machine torch's second thread mostly waits.

Run: `PYTHONPATH=. .venv/bin/python bench/bench_aggregation.py`
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch

from ledger.aggregation import StreamingFedAvg, aggregate_updates, fedavg, fedavg_flat, unflatten
from ledger.modelfile import flat_from_bytes, model_to_bytes

CLIENTS = 10
BLOCKS = 20
WIDTH = 700


def model_template() -> dict[str, torch.Tensor]:
    """Shapes of the benchmark model: exactly 10,000,000 parameters."""
    shapes: dict[str, tuple[int, ...]] = {}
    for block in range(BLOCKS):
        shapes[f"blocks.{block:02d}.linear.weight"] = (WIDTH, WIDTH)
        shapes[f"blocks.{block:02d}.linear.bias"] = (WIDTH,)
        shapes[f"blocks.{block:02d}.norm.weight"] = (WIDTH,)
        shapes[f"blocks.{block:02d}.norm.bias"] = (WIDTH,)
    used = sum(int(np.prod(s)) for s in shapes.values())
    shapes["head.weight"] = (10_000_000 - used,)
    return {key: torch.empty(shape, dtype=torch.float32) for key, shape in shapes.items()}


def seed_loop_fedavg(
    states: Sequence[dict[str, torch.Tensor]], counts: Sequence[int]
) -> dict[str, torch.Tensor]:
    """The seed's aggregation, written plainly: per key, sum weight*tensor over clients, divide."""
    total = sum(counts)
    averaged: dict[str, torch.Tensor] = {}
    for key in states[0]:
        summed = sum(state[key] * count for state, count in zip(states, counts, strict=True))
        averaged[key] = cast(torch.Tensor, summed) / total
    return averaged


def flower_aggregate() -> Callable[[list[tuple[list[np.ndarray], int]]], list[np.ndarray]]:
    """Flower's own `aggregate` from the installed flwr 1.42 (not a copy)."""
    from flwr.server.strategy.aggregate import aggregate

    return aggregate


def _median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(repeats: int = 7, clients: int = CLIENTS) -> dict[str, Any]:
    """Measure and return the aggregation keys of `bench/results.json`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(repeats, clients)
    finally:
        torch.set_num_threads(threads)


def _measure(repeats: int, clients: int) -> dict[str, Any]:
    template = model_template()
    params = sum(t.numel() for t in template.values())
    generator = torch.Generator().manual_seed(0)
    flats = [torch.randn(params, generator=generator, dtype=torch.float32) for _ in range(clients)]
    states = [unflatten(flat, template) for flat in flats]
    arrays = [[states[c][key].numpy() for key in template] for c in range(clients)]
    counts = [100 + 17 * c for c in range(clients)]
    wire = [model_to_bytes(state) for state in states]
    received = [flat_from_bytes(data)[0] for data in wire]
    out = torch.empty(params, dtype=torch.float32)

    # Same answer from all three before timing anything.
    ours = fedavg_flat(received, counts, out=out)
    seed = seed_loop_fedavg(states, counts)
    flower = flower_aggregate()(list(zip(arrays, counts, strict=True)))
    ours_by_key = unflatten(ours, template)
    max_diff_seed = max(float((ours_by_key[k] - seed[k]).abs().max()) for k in template)
    max_diff_flower = max(
        float(np.abs(ours_by_key[k].numpy() - f).max()) for k, f in zip(template, flower, strict=True)
    )
    del seed, flower

    aggregate = flower_aggregate()
    flower_input = list(zip(arrays, counts, strict=True))
    copy_src = torch.cat(flats)
    copy_dst = torch.empty_like(copy_src)

    def coordinator_fold() -> bytes:
        # What `Coordinator.run_round` runs: offer each update file as it arrives, then fold
        # them in dataset-id order into the committed model file.
        fold = StreamingFedAvg(hold_bytes=1 << 40)
        for at, (data, count) in enumerate(zip(wire, counts, strict=True)):
            fold.offer(at, data, count)
        return fold.result(list(range(clients)), wire.__getitem__)

    if coordinator_fold() != aggregate_updates(wire, counts):
        raise AssertionError("the coordinator's fold and aggregate_updates give different model files")
    t_ours = _median_seconds(coordinator_fold, repeats)
    t_kernel = _median_seconds(lambda: fedavg_flat(received, counts, out=out), repeats)
    t_ours_states = _median_seconds(lambda: fedavg(states, counts), repeats)
    t_seed = _median_seconds(lambda: seed_loop_fedavg(states, counts), repeats)
    t_flower = _median_seconds(lambda: aggregate(flower_input), repeats)
    t_copy = _median_seconds(lambda: copy_dst.copy_(copy_src), repeats)

    input_bytes = clients * params * 4
    return {
        "aggregation_clients": clients,
        "aggregation_params": params,
        "aggregation_tensors": len(template),
        "aggregation_torch_threads": torch.get_num_threads(),
        # The headline figures time the coordinator's path (update files in, model file out).
        "aggregation_ours_s": t_ours,
        "aggregation_flat_kernel_s": t_kernel,
        "aggregation_ours_from_state_dicts_s": t_ours_states,
        "aggregation_seed_loop_s": t_seed,
        "aggregation_flower_s": t_flower,
        "aggregation_speedup_vs_seed_loop": t_seed / t_ours,
        "aggregation_speedup_vs_flower": t_flower / t_ours,
        "aggregation_speedup_vs_seed_loop_from_state_dicts": t_seed / t_ours_states,
        "aggregation_speedup_vs_flower_from_state_dicts": t_flower / t_ours_states,
        # Bytes of client updates read per second; memcpy is the same bytes copied once.
        "aggregation_gbps": input_bytes / t_ours / 1e9,
        "memcpy_gbps": input_bytes / t_copy / 1e9,
        "aggregation_max_abs_diff_vs_seed_loop": max_diff_seed,
        "aggregation_max_abs_diff_vs_flower": max_diff_flower,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
