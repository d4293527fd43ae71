"""Weighted FedAvg over flat parameter buffers: pure functions, no model code.

`aggregate_updates` is the one code path from the nodes' update files to the committed
model file: the coordinator, the Flower strategy and the audit all call it, so an auditor
holding a round's update bytes recomputes the committed model digest exactly.

A model state is laid out as one contiguous float32 vector (`flatten`), keys in sorted
order, the same order safetensors stores them. Averaging then is one weighted sum of K
vectors, computed block by block: each output block stays in cache while every client's
block is added into it, so the clients' buffers are read once and the output written
once.

The arithmetic is pinned down so that any machine gets the same bits: with weights
`w_i = float32(n_i / sum(n))` (the quotient computed in double), each value is
`(...((x_0 * w_0) + (x_1 * w_1)) + ...) + (x_k * w_k)` in float32, clients in the order
given, every product and sum rounded on its own (IEEE 754, round to nearest). No fused
multiply-add: torch's `add_(x, alpha=w)` fuses on AVX2/AVX-512 and not on CPUs without
them, which gave different digests for the same updates; a separate multiply into a
scratch block and an add give the same bits on every kernel (checked against numpy and
torch's default, AVX2 and AVX-512 kernels) at about 2.5x the time of the fused form.

It lives in `ledger` (not `fl_node`) so the audit needs no federated-learning code; it
imports torch, so nothing imported by `import ledger` or the CLI's start-up may import it.
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch

from ledger.errors import LedgerError
from ledger.modelfile import ModelBytesError, flat_from_bytes, model_to_bytes

StateDict = dict[str, torch.Tensor]

# 256 Ki float32 = 1 MiB per output block (plus as much scratch): stays in cache while the
# clients' blocks stream in, and per-op dispatch cost is negligible (measured on 10 x 10M:
# 64 Ki to 1 Mi blocks are within 15% of each other).
BLOCK = 1 << 18


class AggregationError(LedgerError, ValueError):
    """Client updates cannot be averaged (shapes, keys or weights do not fit)."""


def aggregate_updates(updates: Sequence[bytes], num_examples: Sequence[int]) -> bytes:
    """The committed model's file: weighted FedAvg of update files, weights = example counts.

    `updates` are the nodes' update files (canonical safetensors, `ledger.modelfile`) in
    manifest order (ascending dataset id) and `num_examples` their attested counts. Every
    update must hold the same float32 tensors (names and shapes); the result is serialised
    with `model_to_bytes`, so its sha256 is the model digest a round commits. The
    accumulation order is the order given, so the same inputs give the same bytes.
    """
    if len(updates) != len(num_examples):
        raise AggregationError(f"{len(updates)} update files but {len(num_examples)} example counts")
    if not updates:
        raise AggregationError("no client updates to aggregate")
    for at, n in enumerate(num_examples):
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise AggregationError(f"update {at}: example count must be a positive integer, got {n!r}")
    flats: list[torch.Tensor] = []
    template: dict[str, torch.Tensor] = {}
    for at, data in enumerate(updates):
        try:
            flat, shapes = flat_from_bytes(data)
        except ModelBytesError as error:
            raise AggregationError(f"update {at} is not a model file: {error}") from None
        if at == 0:
            template = shapes
        elif layout(shapes) != layout(template):
            raise AggregationError(
                f"update {at} holds tensors {layout(shapes)}, update 0 holds {layout(template)}"
            )
        flats.append(flat)
    averaged = fedavg_flat(flats, num_examples)
    return model_to_bytes(unflatten(averaged, template))


def layout(state: Mapping[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs in the order `flatten` lays them out: sorted by key."""
    return [(key, tuple(state[key].shape)) for key in sorted(state)]


def flatten(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One new contiguous 1-D float32 CPU tensor holding every value, keys in sorted order."""
    if not state:
        raise AggregationError("cannot flatten an empty model state")
    keys = sorted(state)
    total = sum(state[key].numel() for key in keys)
    flat = torch.empty(total, dtype=torch.float32)
    torch.cat([state[key].detach().reshape(-1).to(torch.float32) for key in keys], out=flat)
    return flat


def unflatten(flat: torch.Tensor, template: Mapping[str, torch.Tensor]) -> StateDict:
    """Views of `flat` shaped like `template`, in the template's key order.

    The tensors share `flat`'s memory (no copy): clone them to keep them past changes to it.
    """
    if flat.ndim != 1:
        raise AggregationError(f"flat buffer must be 1-D, got shape {tuple(flat.shape)}")
    shapes = layout(template)
    sizes = [math.prod(shape) for _, shape in shapes]
    if sum(sizes) != flat.numel():
        raise AggregationError(
            f"flat buffer has {flat.numel()} values, the template needs {sum(sizes)} ({len(sizes)} tensors)"
        )
    pieces = torch.split(flat, sizes)
    by_key = {key: piece.view(shape) for (key, shape), piece in zip(shapes, pieces, strict=True)}
    return {key: by_key[key] for key in template}


def normalized_weights(num_examples: Sequence[float]) -> list[float]:
    """FedAvg weights n_i / sum(n); every count must be finite and >= 0, the sum > 0."""
    if not num_examples:
        raise AggregationError("no client updates to aggregate")
    for at, n in enumerate(num_examples):
        if not math.isfinite(n) or n < 0:
            raise AggregationError(f"client {at}: weight must be a finite number >= 0, got {n}")
    total = math.fsum(num_examples)
    if total <= 0:
        raise AggregationError(f"weights sum to {total}; at least one client must have examples")
    return [n / total for n in num_examples]


def fedavg_flat(
    flats: Sequence[torch.Tensor], num_examples: Sequence[float], out: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_i n_i * flats[i] / sum_i n_i over 1-D float32 buffers of equal length.

    `out` (a float32 buffer of the same length) receives the result when given.
    """
    weights = normalized_weights(num_examples)
    if len(flats) != len(weights):
        raise AggregationError(f"{len(flats)} client buffers but {len(weights)} weights")
    first = flats[0]
    for at, flat in enumerate(flats):
        if flat.ndim != 1 or flat.dtype != torch.float32 or flat.device.type != "cpu":
            raise AggregationError(
                f"client {at}: need a 1-D float32 CPU buffer, got {flat.dtype} shape {tuple(flat.shape)}"
            )
        if flat.numel() != first.numel():
            raise AggregationError(f"client {at} has {flat.numel()} parameters, client 0 has {first.numel()}")
    size = first.numel()
    if out is None:
        out = torch.empty(size, dtype=torch.float32)
    elif out.shape != (size,) or out.dtype != torch.float32:
        raise AggregationError(f"out must be float32 of shape ({size},), got {out.dtype} {tuple(out.shape)}")
    sources = [flat.contiguous() for flat in flats]
    scalars = _float32_weights(weights)
    scratch = torch.empty(min(BLOCK, size), dtype=torch.float32)
    # The loop is over cache-sized blocks and clients, never over parameters: a 10M model
    # is 40 blocks whatever its number of tensors. Each output block stays in cache while
    # every client's weighted block is added into it.
    for start in range(0, size, BLOCK):
        stop = min(start + BLOCK, size)
        block = out[start:stop]
        product = scratch[: stop - start]
        torch.mul(sources[0][start:stop], scalars[0], out=block)
        for source, weight in zip(sources[1:], scalars[1:], strict=True):
            torch.mul(source[start:stop], weight, out=product)
            block.add_(product)
    return out


def _float32_weights(weights: Sequence[float]) -> list[torch.Tensor]:
    """The weights as 0-d float32 tensors, so every kernel multiplies by the same float32 value."""
    return [torch.tensor(weight, dtype=torch.float32) for weight in weights]


def fedavg(states: Sequence[Mapping[str, torch.Tensor]], num_examples: Sequence[float]) -> StateDict:
    """Weighted FedAvg of client state dicts (weights = example counts).

    Every state must have the same keys and shapes. Returns new tensors (views of one
    flat buffer) in the first state's key order.
    """
    if len(states) != len(num_examples):
        raise AggregationError(f"{len(states)} client states but {len(num_examples)} example counts")
    if not states:
        raise AggregationError("no client updates to aggregate")
    reference = layout(states[0])
    for at, state in enumerate(states[1:], start=1):
        shapes = layout(state)
        if shapes != reference:
            keys, ref_keys = [k for k, _ in shapes], [k for k, _ in reference]
            if keys != ref_keys:
                raise AggregationError(
                    f"client {at} has keys {sorted(set(keys) ^ set(ref_keys))} that client 0 "
                    "does not share (or the reverse)"
                )
            bad = next(k for (k, s), (_, r) in zip(shapes, reference, strict=True) if s != r)
            raise AggregationError(
                f"client {at}: {bad!r} has shape {dict(shapes)[bad]}, client 0 has {dict(reference)[bad]}"
            )
    weights = normalized_weights(num_examples)
    keys = [key for key, _ in reference]
    sizes = [math.prod(shape) for _, shape in reference]
    out = torch.empty(sum(sizes), dtype=torch.float32)
    out_pieces = torch.split(out, sizes)
    # No flat copy of each client: the output is cut into cache-sized blocks of the
    # flat layout, each block a list of tensor slices, and every client's matching
    # slices are weighted and added in with multi-tensor ops (`_foreach_mul`/`_foreach_add_`,
    # the kernels torch's optimisers use), so the arithmetic is vectorised and the block
    # stays in cache.
    sources = [
        [state[key].detach().to(torch.float32).contiguous().view(-1) for key in keys] for state in states
    ]
    scalars = _float32_weights(weights)
    for block in _blocks(sizes, BLOCK):
        targets = [out_pieces[i][lo:hi] for i, lo, hi in block]
        torch._foreach_copy_(targets, [sources[0][i][lo:hi] for i, lo, hi in block])
        torch._foreach_mul_(targets, scalars[0])
        for source, weight in zip(sources[1:], scalars[1:], strict=True):
            # Multiply, then add: the same rounding as `fedavg_flat` (no fused multiply-add).
            torch._foreach_add_(
                targets, torch._foreach_mul([source[i][lo:hi] for i, lo, hi in block], weight)
            )
    return unflatten(out, states[0])


def _blocks(sizes: Sequence[int], block: int) -> list[list[tuple[int, int, int]]]:
    """Cut the flat layout of tensors with `sizes` into blocks of `block` values.

    Each block is a list of (tensor index, start, stop) slices, in layout order.
    """
    blocks: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    filled = 0
    for index, size in enumerate(sizes):
        position = 0
        while position < size:
            take = min(size - position, block - filled)
            current.append((index, position, position + take))
            position += take
            filled += take
            if filled == block:
                blocks.append(current)
                current, filled = [], 0
    if current:
        blocks.append(current)
    return blocks


def fedavg_stacked(stacked: torch.Tensor, num_examples: Sequence[float]) -> torch.Tensor:
    """FedAvg when the updates already sit in one [clients, params] float32 tensor: w @ X."""
    weights = normalized_weights(num_examples)
    if stacked.ndim != 2 or stacked.shape[0] != len(weights):
        raise AggregationError(f"need a [{len(weights)}, params] tensor, got shape {tuple(stacked.shape)}")
    w = torch.tensor(weights, dtype=torch.float32)
    return torch.mv(stacked.t(), w)


# Update bytes a `StreamingFedAvg` keeps in memory while a round's updates arrive; beyond
# it, updates are read back from the content store (where the coordinator has already put
# them) when their turn in the fold comes.
HOLD_BYTES = 8 << 20


class StreamingFedAvg:
    """`aggregate_updates` over updates that arrive one by one, in O(model) memory.

    The fold cannot start before the round's set of updates is final: every term is
    `x_i * float32(n_i / sum(n))`, and the sum is known only then. Until then `offer` keeps
    an update's bytes only while the held bytes stay under `hold_bytes` (small models never
    leave memory); the others are read back with `load` (from the content store, keyed by
    dataset id) when the fold reaches them (as `bytes`, or a `bytearray` filled in place:
    `LocalBlockstore.get_buffer`, so a read does not hold the file twice). `result` then folds
    the updates one at a time in the order given (the manifest's, ascending dataset id) into
    one float32 accumulator: the same multiply, then add, per element and in the same client
    order as `fedavg_flat`, so the bytes equal `aggregate_updates` over the same updates. Working
    memory: the accumulator, one update file and a 1 MiB scratch block, plus the held bytes.
    Held bytes are released as they are folded, so a second `result` (a participant dropped
    at commit) reads every update through `load`.
    """

    def __init__(self, *, hold_bytes: int = HOLD_BYTES) -> None:
        self.hold_bytes = hold_bytes
        self._held: dict[int, bytes] = {}
        self._held_total = 0
        self.num_examples: dict[int, int] = {}

    def offer(self, key: int, data: bytes, num_examples: int) -> bool:
        """Records update `key`; returns whether its bytes are held (else `load` must return them)."""
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
            raise AggregationError(
                f"update {key}: example count must be a positive integer, got {num_examples!r}"
            )
        if key in self.num_examples:
            raise AggregationError(f"update {key} was offered twice")
        self.num_examples[key] = num_examples
        if self._held_total + len(data) <= self.hold_bytes:
            self._held[key] = data
            self._held_total += len(data)
            return True
        return False

    def result(self, keys: Sequence[int], load: Callable[[int], bytes | bytearray]) -> bytes:
        """The model file of the FedAvg of updates `keys`, folded in that order."""
        if not keys:
            raise AggregationError("no client updates to aggregate")
        missing = [key for key in keys if key not in self.num_examples]
        if missing:
            raise AggregationError(f"updates {missing} were never offered")
        scalars = _float32_weights(normalized_weights([self.num_examples[key] for key in keys]))
        out: torch.Tensor | None = None
        scratch = torch.empty(0, dtype=torch.float32)
        template: dict[str, torch.Tensor] = {}
        buffer = bytearray()
        canonical = False
        at = 0
        for run in self._runs(keys):
            # A run of updates already in memory is folded block by block (each output block
            # stays in cache while every update of the run is added in, as `fedavg_flat` does);
            # an update read back from the store is a run of one. The order per element is the
            # order of `keys` either way.
            flats: list[torch.Tensor] = []
            for key in run:
                data = self._take(key, load)
                try:
                    # A bytearray is read the same way (a buffer; the view is not written to).
                    flat, shapes = flat_from_bytes(cast(bytes, data))
                except ModelBytesError as error:
                    raise AggregationError(f"update {at + len(flats)} is not a model file: {error}") from None
                if out is None:
                    template = shapes
                    # The model file's buffer, its header first; the fold writes the values in place.
                    header = _canonical_header(layout(shapes))
                    canonical = data[: len(header)] == header
                    buffer = bytearray(len(header) + 4 * flat.numel())
                    buffer[: len(header)] = header
                    out = torch.frombuffer(
                        buffer, dtype=torch.float32, offset=len(header), count=flat.numel()
                    )
                    scratch = torch.empty(min(BLOCK, flat.numel()), dtype=torch.float32)
                elif layout(shapes) != layout(template):
                    raise AggregationError(
                        f"update {at + len(flats)} holds tensors {layout(shapes)}, "
                        f"update 0 holds {layout(template)}"
                    )
                flats.append(flat)
                # Nothing but `flats` may keep an update alive: the next run's read would
                # otherwise find the last one still in memory (two updates beside the sum).
                del data, flat
            assert out is not None
            _fold_run(out, scratch, flats, scalars[at : at + len(run)], first=at == 0)
            at += len(run)
            del flats
        assert out is not None
        if not canonical:
            return model_to_bytes(unflatten(out, template))
        del out
        # The last update's buffer was just freed, but glibc keeps it in the heap and the model
        # copy below (a `bytes` 32 bytes larger than that buffer) does not fit there: without a
        # trim the copy takes new pages, and the peak holds the sum, the freed update and the copy.
        _release_free_heap()
        return bytes(buffer)

    def _runs(self, keys: Sequence[int]) -> list[list[int]]:
        """`keys` cut into runs: consecutive held updates together, each update to load alone."""
        runs: list[list[int]] = []
        for key in keys:
            if key in self._held and runs and runs[-1][-1] in self._held:
                runs[-1].append(key)
            else:
                runs.append([key])
        return runs

    def _take(self, key: int, load: Callable[[int], bytes | bytearray]) -> bytes | bytearray:
        data = self._held.pop(key, None)
        if data is None:
            return load(key)
        self._held_total -= len(data)
        return data


def _release_free_heap() -> None:
    """Returns freed heap pages to the system (glibc's `malloc_trim`; a no-op elsewhere)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


@functools.cache
def _libc() -> object:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _fold_run(
    out: torch.Tensor,
    scratch: torch.Tensor,
    flats: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    *,
    first: bool,
) -> None:
    """Adds `flats[i] * weights[i]` into `out` block by block (the first run's first term is written)."""
    for start in range(0, out.numel(), BLOCK):
        stop = min(start + BLOCK, out.numel())
        block, product = out[start:stop], scratch[: stop - start]
        for index, (flat, weight) in enumerate(zip(flats, weights, strict=True)):
            if first and index == 0:
                torch.mul(flat[start:stop], weight, out=block)
            else:
                torch.mul(flat[start:stop], weight, out=product)
                block.add_(product)


def _canonical_header(shapes: Sequence[tuple[str, tuple[int, ...]]]) -> bytes:
    """The first bytes of `model_to_bytes` for float32 tensors of these names and shapes (sorted).

    safetensors writes an 8-byte little-endian length, then compact JSON (tensors in name
    order when all are float32, each with dtype, shape and data offsets) padded with spaces
    to a multiple of 8, then the values back to back: a function of names and shapes alone.
    `StreamingFedAvg.result` writes its sums straight after this header instead of
    serialising a copy, and only when the update it folds first has this very header
    (otherwise it serialises with `model_to_bytes`); tests compare it with `model_to_bytes`.
    """
    entries: dict[str, object] = {}
    offset = 0
    for key, shape in shapes:
        size = 4 * math.prod(shape)
        entries[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text
