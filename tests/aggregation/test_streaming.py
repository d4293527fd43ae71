"""StreamingFedAvg (the coordinator's fold) gives the bytes of aggregate_updates (the audit's)."""

from __future__ import annotations

import random

import pytest
import torch

from ledger.aggregation import BLOCK, AggregationError, StreamingFedAvg, aggregate_updates
from ledger.modelfile import model_to_bytes


def _update(rng: torch.Generator, sizes: tuple[int, int]) -> bytes:
    return model_to_bytes(
        {
            "a.weight": torch.randn(sizes[0], generator=rng) * 3.0,
            "b.bias": torch.randn(sizes[1], generator=rng) * 1e-3,
        }
    )


@pytest.mark.parametrize("hold_bytes", [0, 1 << 30, 300_000])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fold_is_byte_identical_to_aggregate_updates_in_any_arrival_order(seed: int, hold_bytes: int) -> None:
    rng = torch.Generator().manual_seed(seed)
    pick = random.Random(seed)
    clients = pick.randint(1, 9)
    # Spans several fold blocks, with a ragged tail.
    sizes = (BLOCK + pick.randint(1, 5000), pick.randint(1, 300))
    ids = sorted(pick.sample(range(1, 1000), clients))
    files = {i: _update(rng, sizes) for i in ids}
    counts = {i: pick.randint(1, 10_000) for i in ids}
    expected = aggregate_updates([files[i] for i in ids], [counts[i] for i in ids])
    fold = StreamingFedAvg(hold_bytes=hold_bytes)
    arrival = ids[:]
    pick.shuffle(arrival)
    held = {i: fold.offer(i, files[i], counts[i]) for i in arrival}
    loaded: list[int] = []

    def load(key: int) -> bytes:
        loaded.append(key)
        return files[key]

    assert fold.result(ids, load) == expected
    assert sorted(loaded) == sorted(i for i in ids if not held[i])
    if hold_bytes == 0:
        assert not any(held.values())
    # A participant dropped at commit: the recomputation reads everything back and still agrees.
    if clients > 1:
        kept = [i for i in ids if i != ids[clients // 2]]
        loaded.clear()
        expected_kept = aggregate_updates([files[i] for i in kept], [counts[i] for i in kept])
        assert fold.result(kept, load) == expected_kept
        assert loaded == kept


def test_fold_order_is_the_order_given_not_the_arrival_order() -> None:
    rng = torch.Generator().manual_seed(7)
    files = [_update(rng, (1000, 10)) for _ in range(3)]
    fold = StreamingFedAvg()
    for key in (2, 0, 1):
        fold.offer(key, files[key], key + 1)
    forward = fold.result([0, 1, 2], files.__getitem__)
    assert forward == aggregate_updates(files, [1, 2, 3])
    assert fold.result([2, 1, 0], files.__getitem__) == aggregate_updates(files[::-1], [3, 2, 1])


def test_fold_refuses_what_aggregate_updates_refuses() -> None:
    rng = torch.Generator().manual_seed(8)
    good, other = _update(rng, (100, 10)), _update(rng, (101, 10))
    fold = StreamingFedAvg()
    fold.offer(1, good, 5)
    fold.offer(2, other, 5)
    with pytest.raises(AggregationError, match=r"update 1 holds tensors .*101"):
        fold.result([1, 2], {}.__getitem__)
    with pytest.raises(AggregationError, match=r"updates \[3\] were never offered"):
        fold.result([1, 3], {}.__getitem__)
    with pytest.raises(AggregationError, match="offered twice"):
        fold.offer(1, good, 5)
    with pytest.raises(AggregationError, match=r"example count must be a positive integer, got 0"):
        fold.offer(4, good, 0)
    assert 4 not in fold.num_examples
    fold.offer(5, b"not a model", 1)
    with pytest.raises(AggregationError, match="update 0 is not a model file"):
        fold.result([5, 1], {}.__getitem__)
    with pytest.raises(AggregationError, match="no client updates"):
        StreamingFedAvg().result([], {}.__getitem__)


@pytest.mark.parametrize(
    "shapes",
    [
        {"a": (5,), "b.w": (3, 2), "c": (0,), "z": ()},
        {"émoji 🙂": (2,), 'quote"back\\slash': (1, 1, 1), "tab\tkey": (7,)},
        {f"layer.{i}.weight": (i + 1, 3) for i in range(12)},
    ],
)
def test_canonical_header_is_the_header_of_model_to_bytes(shapes: dict[str, tuple[int, ...]]) -> None:
    from ledger.aggregation import _canonical_header, layout

    state = {key: torch.ones(shape) for key, shape in shapes.items()}
    header = _canonical_header(layout(state))
    data = model_to_bytes(state)
    assert data[: len(header)] == header
    assert len(data) == len(header) + 4 * sum(t.numel() for t in state.values())


def test_fold_of_a_non_canonical_first_header_still_gives_the_canonical_file() -> None:
    rng = torch.Generator().manual_seed(9)
    files = [_update(rng, (64, 8)) for _ in range(2)]
    # The same tensors, the header's JSON respaced (flat_from_bytes still accepts it).
    header_len = int.from_bytes(files[0][:8], "little")
    spaced = files[0][8 : 8 + header_len].rstrip(b" ").replace(b",", b", ")
    spaced += b" " * (-len(spaced) % 8)
    odd = len(spaced).to_bytes(8, "little") + spaced + files[0][8 + header_len :]
    fold = StreamingFedAvg()
    fold.offer(0, odd, 3)
    fold.offer(1, files[1], 4)
    assert fold.result([0, 1], {}.__getitem__) == aggregate_updates(files, [3, 4])
