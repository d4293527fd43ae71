"""FedAvg over flat buffers: hand-computed cases, properties, and error paths."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.aggregation import (
    AggregationError,
    aggregate_updates,
    fedavg,
    fedavg_flat,
    fedavg_stacked,
    flatten,
    normalized_weights,
    unflatten,
)
from ledger.errors import LedgerError
from ledger.modelfile import model_from_bytes, model_to_bytes

ROOT = Path(__file__).resolve().parents[2]


def _state(w: list[list[float]], b: list[float]) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.tensor(w), "layer.bias": torch.tensor(b)}


def test_fedavg_hand_computed() -> None:
    a = _state([[1.0, 2.0], [3.0, 4.0]], [0.0, 10.0])
    b = _state([[5.0, 6.0], [7.0, 8.0]], [4.0, -10.0])
    # Weights 1:3 -> 0.25 * a + 0.75 * b.
    out = fedavg([a, b], [10, 30])
    assert list(out) == ["layer.weight", "layer.bias"]
    assert torch.equal(out["layer.weight"], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))
    assert torch.equal(out["layer.bias"], torch.tensor([3.0, -5.0]))


def test_fedavg_ignores_key_order_and_zero_weight_client() -> None:
    a = _state([[1.0]], [2.0])
    b = {"layer.bias": torch.tensor([100.0]), "layer.weight": torch.tensor([[100.0]])}
    out = fedavg([a, b], [5, 0])
    assert torch.equal(out["layer.weight"], torch.tensor([[1.0]]))
    assert torch.equal(out["layer.bias"], torch.tensor([2.0]))


def test_flatten_unflatten_round_trip_sorted_layout() -> None:
    state = {"z": torch.arange(6.0).view(2, 3), "a": torch.tensor([7.0, 8.0])}
    flat = flatten(state)
    assert flat.dtype == torch.float32 and flat.is_contiguous()
    assert flat.tolist() == [7.0, 8.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # "a" before "z"
    back = unflatten(flat, state)
    assert list(back) == ["z", "a"]
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_stacked_matches_flat() -> None:
    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(1))
    counts = [1, 2, 3, 4]
    torch.testing.assert_close(fedavg_stacked(x, counts), fedavg_flat(list(x), counts))


def test_fedavg_flat_spans_many_blocks() -> None:
    gen = torch.Generator().manual_seed(2)
    flats = [torch.randn(600_001, generator=gen) for _ in range(3)]
    expected = (flats[0] * 1 + flats[1] * 2 + flats[2] * 5) / 8
    torch.testing.assert_close(fedavg_flat(flats, [1, 2, 5]), expected)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([], "no client updates"),
        ([1, -1], "client 1: weight must be a finite number >= 0, got -1"),
        ([0, 0], "weights sum to 0"),
        ([1, float("nan")], "client 1: weight must be a finite number >= 0, got nan"),
    ],
)
def test_bad_weights_are_refused(counts: list[float], message: str) -> None:
    with pytest.raises(AggregationError, match=message):
        normalized_weights(counts)


def test_mismatched_inputs_are_refused_and_inputs_unchanged() -> None:
    a = _state([[1.0, 2.0]], [0.0])
    b = _state([[1.0, 2.0, 3.0]], [0.0])
    before = [{k: v.clone() for k, v in s.items()} for s in (a, b)]
    with pytest.raises(
        AggregationError, match=r"client 1: 'layer.weight' has shape \(1, 3\), client 0 has \(1, 2\)"
    ):
        fedavg([a, b], [1, 1])
    c = {"other": torch.zeros(1)}
    with pytest.raises(AggregationError, match="client 1 has keys"):
        fedavg([a, c], [1, 1])
    with pytest.raises(ValueError, match="2 client states but 3 example counts"):
        fedavg([a, a], [1, 1, 1])
    with pytest.raises(LedgerError, match="client 1 has 3 parameters, client 0 has 2"):
        fedavg_flat([torch.zeros(2), torch.zeros(3)], [1, 1])
    with pytest.raises(AggregationError, match=r"need a 1-D float32 CPU buffer, got torch\.float64"):
        fedavg_flat([torch.zeros(2, dtype=torch.float64)], [1])
    with pytest.raises(AggregationError, match="flat buffer has 3 values, the template needs 2"):
        unflatten(torch.zeros(3), {"w": torch.zeros(2)})
    for state, saved in zip((a, b), before, strict=True):
        assert all(torch.equal(state[k], saved[k]) for k in state)


vectors = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=n, max_size=n),
        min_size=1,
        max_size=6,
    )
)
counts_for = st.integers(min_value=1, max_value=1000)


@settings(max_examples=60, deadline=None)
@given(rows=vectors, data=st.data())
def test_property_permutation_invariance(rows: list[list[float]], data: st.DataObject) -> None:
    counts = data.draw(st.lists(counts_for, min_size=len(rows), max_size=len(rows)))
    order = data.draw(st.permutations(range(len(rows))))
    flats = [torch.tensor(r) for r in rows]
    a = fedavg_flat(flats, counts)
    b = fedavg_flat([flats[i] for i in order], [counts[i] for i in order])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(rows=vectors, scale=st.integers(min_value=1, max_value=50), data=st.data())
def test_property_weight_scale_invariance(rows: list[list[float]], scale: int, data: st.DataObject) -> None:
    counts = data.draw(st.lists(counts_for, min_size=len(rows), max_size=len(rows)))
    flats = [torch.tensor(r) for r in rows]
    # Only relative weights matter: scaling every count changes nothing.
    torch.testing.assert_close(
        fedavg_flat(flats, counts), fedavg_flat(flats, [c * scale for c in counts]), rtol=1e-5, atol=1e-3
    )
    assert abs(sum(normalized_weights(counts)) - 1.0) < 1e-12


@settings(max_examples=60, deadline=None)
@given(row=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=50), data=st.data())
def test_property_identical_inputs_give_that_input(row: list[float], data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=8))
    counts = data.draw(st.lists(counts_for, min_size=k, max_size=k))
    flat = torch.tensor(row)
    out = fedavg_flat([flat.clone() for _ in range(k)], counts)
    torch.testing.assert_close(out, flat, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(rows=vectors, data=st.data())
def test_property_result_within_client_range(rows: list[list[float]], data: st.DataObject) -> None:
    counts = data.draw(st.lists(counts_for, min_size=len(rows), max_size=len(rows)))
    stacked = torch.tensor(rows)
    out = fedavg_flat(list(stacked), counts)
    assert bool((out >= stacked.min(dim=0).values - 1e-3).all())
    assert bool((out <= stacked.max(dim=0).values + 1e-3).all())


def test_state_dict_path_is_bit_identical_to_flat_path_across_blocks() -> None:
    gen = torch.Generator().manual_seed(3)
    # One tensor spans two blocks, one is tiny, one is non-contiguous (a transposed view).
    states = [
        {
            "big": torch.randn(3, 500_001, generator=gen),
            "tiny": torch.randn(7, generator=gen),
            "view": torch.randn(40, 30, generator=gen).t(),
        }
        for _ in range(4)
    ]
    counts = [3, 1, 4, 1]
    out = fedavg(states, counts)
    assert list(out) == ["big", "tiny", "view"] and out["view"].shape == (30, 40)
    assert torch.equal(flatten(out), fedavg_flat([flatten(s) for s in states], counts))


def _file(w: list[list[float]], b: list[float]) -> bytes:
    return model_to_bytes(_state(w, b))


def test_aggregate_updates_is_the_weighted_mean_as_a_model_file() -> None:
    a = _file([[1.0, 2.0], [3.0, 4.0]], [0.0, 10.0])
    b = _file([[5.0, 6.0], [7.0, 8.0]], [4.0, -10.0])
    out = aggregate_updates([a, b], [10, 30])
    assert out == _file([[4.0, 5.0], [6.0, 7.0]], [3.0, -5.0])
    # The same inputs give the same bytes, and the bytes equal the state-dict path's.
    assert aggregate_updates([a, b], [10, 30]) == out
    assert out == model_to_bytes(fedavg([model_from_bytes(a), model_from_bytes(b)], [10, 30]))


def test_aggregate_updates_depends_on_every_update_and_count() -> None:
    files = [_file([[float(i), 1.0]], [float(i * i)]) for i in range(1, 4)]
    counts = [3, 5, 7]
    out = aggregate_updates(files, counts)
    assert aggregate_updates(files[:2], counts[:2]) != out
    assert aggregate_updates(files, [3, 5, 8]) != out
    assert aggregate_updates([files[0], files[1], _file([[3.0, 1.0]], [9.5])], counts) != out


@pytest.mark.parametrize(
    ("updates", "counts", "message"),
    [
        ([], [], "no client updates to aggregate"),
        (["a"], [1, 2], "1 update files but 2 example counts"),
        (["a", "a"], [1, 0], r"update 1: example count must be a positive integer, got 0"),
        (["a"], [True], r"update 0: example count must be a positive integer, got True"),
        (["a", b"garbage"], [1, 1], "update 1 is not a model file: model file is truncated"),
        (["a", "other"], [1, 1], r"update 1 holds tensors \[\('layer.bias', \(3,\)\)"),
    ],
)
def test_aggregate_updates_refuses_what_cannot_be_averaged(
    updates: list[object], counts: list[object], message: str
) -> None:
    files = {"a": _file([[1.0, 2.0]], [1.0, 2.0]), "other": _file([[1.0, 2.0]], [1.0, 2.0, 3.0])}
    data = [files[u] if isinstance(u, str) else u for u in updates]
    with pytest.raises(AggregationError, match=message):
        aggregate_updates(data, counts)  # type: ignore[arg-type]


_RECOMPUTE = """
import hashlib, sys
import numpy as np
import torch
from ledger.aggregation import aggregate_updates, fedavg
from ledger.modelfile import model_from_bytes, model_to_bytes
rng = np.random.default_rng(5)
shapes = {"a.weight": (300, 700), "a.bias": (700,), "b.weight": (70_001,)}
updates = [
    model_to_bytes({k: torch.from_numpy(rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()})
    for _ in range(4)
]
counts = [113, 7, 2029, 31]
out = aggregate_updates(updates, counts)
states = [model_from_bytes(u) for u in updates]
assert model_to_bytes(fedavg(states, counts)) == out
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(out).hexdigest())
"""


def _numpy_reference() -> str:
    """The documented arithmetic, in numpy: float32 weights, multiply then add, client order."""
    rng = np.random.default_rng(5)
    shapes = {"a.weight": (300, 700), "a.bias": (700,), "b.weight": (70_001,)}
    arrays = [{k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()} for _ in range(4)]
    counts = [113, 7, 2029, 31]
    weights = [np.float32(n / sum(counts)) for n in counts]
    mean = {}
    for key in shapes:
        acc = arrays[0][key] * weights[0]
        for client, weight in zip(arrays[1:], weights[1:], strict=True):
            acc = acc + client[key] * weight
        mean[key] = torch.from_numpy(acc)
    return hashlib.sha256(model_to_bytes(mean)).hexdigest()


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_aggregate_updates_gives_the_same_bits_on_every_cpu_kernel(capability: str) -> None:
    # A CPU without AVX2 (or an auditor forcing torch's portable kernels) must recompute the
    # digest a lab's AVX-512 machine committed: no fused multiply-add anywhere.
    result = subprocess.run(
        [sys.executable, "-c", _RECOMPUTE],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "ATEN_CPU_CAPABILITY": capability},
        timeout=120,
    )
    used, digest = result.stdout.split()
    assert digest == _numpy_reference(), f"{used} kernels gave another aggregate"
