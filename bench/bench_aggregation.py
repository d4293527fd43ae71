"""FedAvg throughput: ours vs the seed's per-parameter loop vs Flower's `aggregate`.

10 clients x 10M float32 parameters (a 20-block model: 700x700 weights, biases, norms,
and a head), weights = example counts. Every implementation gets the updates in its
native form, built before timing: ours flat buffers (what the coordinator holds; a
safetensors file of float32 tensors is one contiguous buffer in sorted-key order), the
seed loop state dicts, Flower lists of ndarrays. All three share the same memory. We
also time ours from state dicts (flatten included) and a plain tensor copy of the same
bytes, the memory-bandwidth yardstick. Median of repeats after a warm-up.

Run: `PYTHONPATH=. .venv/bin/python bench/bench_aggregation.py`
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import numpy as np
import torch

from fl_node.aggregate import fedavg, fedavg_flat, unflatten

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


def seed_loop_fedavg(states: Sequence[dict[str, torch.Tensor]], counts: Sequence[int]) -> dict[str, torch.Tensor]:
    """The seed's aggregation, written plainly: per key, sum weight*tensor over clients, divide."""
    total = sum(counts)
    averaged: dict[str, torch.Tensor] = {}
    for key in states[0]:
        averaged[key] = sum(state[key] * count for state, count in zip(states, counts, strict=True)) / total
    return averaged


def flower_aggregate() -> Callable[[list[tuple[list[np.ndarray], int]]], list[np.ndarray]]:
    """Flower's own `aggregate` (flwr 1.42), or a plain transcription if flwr is absent."""
    try:
        from flwr.server.strategy.aggregate import aggregate

        return aggregate  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - flwr is a project dependency

        def aggregate_fallback(results: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
            total = sum(n for _, n in results)
            weighted = [[layer * n for layer in weights] for weights, n in results]
            return [reduce(np.add, layers) / total for layers in zip(*weighted, strict=True)]

        return aggregate_fallback


def _median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(repeats: int = 5, clients: int = CLIENTS) -> dict[str, Any]:
    """Measure and return the aggregation keys of `bench/results.json`."""
    template = model_template()
    params = sum(t.numel() for t in template.values())
    generator = torch.Generator().manual_seed(0)
    flats = [torch.randn(params, generator=generator, dtype=torch.float32) for _ in range(clients)]
    states = [unflatten(flat, template) for flat in flats]
    arrays = [[states[c][key].numpy() for key in template] for c in range(clients)]
    counts = [100 + 17 * c for c in range(clients)]
    out = torch.empty(params, dtype=torch.float32)

    # Same answer from all three before timing anything.
    ours = fedavg_flat(flats, counts, out=out)
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

    t_ours = _median_seconds(lambda: fedavg_flat(flats, counts, out=out), repeats)
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
        "aggregation_ours_s": t_ours,
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
