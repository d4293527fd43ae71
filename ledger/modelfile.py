"""Deterministic model files: safetensors, no metadata, one canonical form per set of weights.

The model digest committed on-chain is the sha256 of these bytes, so they must depend on
the weights alone: not on key order, memory layout, device or process. safetensors
writes tensors sorted by (dtype, name) with a JSON header, and without `metadata` the
header is a function of names, dtypes and shapes; `model_from_bytes` accepts only that
canonical form, so a file whose header or layout was edited is refused even when it still
parses.

This module lives in `ledger` because the audit recomputes aggregates byte for byte; it
imports torch, so nothing imported by `import ledger` or the CLI's start-up may import it.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from ledger.errors import LedgerError

StateDict = dict[str, torch.Tensor]


class ModelBytesError(LedgerError, ValueError):
    """Bytes are not a canonical model file, or do not match the expected digest."""


def _canonical_tensors(state: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    for key in sorted(state):
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor):
            raise ModelBytesError(f"{key!r} is a {type(tensor).__name__}, not a tensor")
        out[key] = tensor.detach().to("cpu").contiguous()
    return out


def model_to_bytes(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """safetensors bytes of the state, with no metadata: same weights -> same bytes."""
    if not state_dict:
        raise ModelBytesError("cannot serialise an empty model state")
    try:
        return bytes(_st_save(_canonical_tensors(state_dict)))
    except (SafetensorError, ValueError, TypeError) as error:
        raise ModelBytesError(f"cannot serialise model state: {error}") from None


def _read_header(data: bytes) -> tuple[int, Any]:
    """The safetensors header's length and its parsed JSON; errors say how the file is broken."""
    if len(data) < 8:
        raise ModelBytesError(f"model file is truncated: {len(data)} bytes, a header alone needs 8")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ModelBytesError(
            f"model file is truncated or corrupt: header claims {header_len} bytes, file has {len(data) - 8}"
        )
    try:
        return header_len, json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelBytesError("model file header is not valid JSON: the file is corrupt") from None


def model_from_bytes(data: bytes, expected_digest: bytes | None = None) -> StateDict:
    """The state dict in `data`; corrupt, truncated or non-canonical bytes are an error.

    With `expected_digest` (the sha256 the chain or a manifest holds) any edited byte,
    including one inside a weight, is detected; without it only structural damage is.
    """
    if expected_digest is not None:
        actual = hashlib.sha256(data).digest()
        if actual != expected_digest:
            raise ModelBytesError(
                f"model bytes hash to 0x{actual.hex()}, expected 0x{expected_digest.hex()}: "
                "the file was altered or is another model"
            )
    _, header = _read_header(data)
    if not isinstance(header, dict):
        raise ModelBytesError("model file header is not a JSON object: the file is corrupt")
    if "__metadata__" in header:
        raise ModelBytesError("model file carries metadata; canonical model files have none")
    try:
        state = _st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise ModelBytesError(f"model file is corrupt: {error}") from None
    if not state:
        raise ModelBytesError("model file holds no tensors")
    # A file that parses but is not what `model_to_bytes` writes (reordered header,
    # padding, trailing bytes) is not a model anyone committed to.
    if model_to_bytes(state) != bytes(data):
        raise ModelBytesError("model file is not in canonical form (header or layout was altered)")
    return state


def flat_from_bytes(data: bytes) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A model file's weights as one read-only 1-D float32 view of `data`, without a copy.

    safetensors stores float32 tensors back to back in sorted-key order, the layout
    `ledger.aggregation.flatten` uses, so updates are averaged straight from the bytes nodes
    sent. Returns the flat view and a template of shape-only (`meta`) tensors for
    `ledger.aggregation.unflatten`. Do not write to the view: it aliases the immutable bytes.
    """
    header_len, header = _read_header(data)
    if not isinstance(header, dict) or not header:
        raise ModelBytesError("model file header holds no tensors: the file is corrupt")
    if "__metadata__" in header:
        raise ModelBytesError("model file carries metadata; canonical model files have none")
    template: dict[str, torch.Tensor] = {}
    offset = 0
    for key in sorted(header):
        entry = header[key]
        if not isinstance(entry, dict) or entry.get("dtype") != "F32":
            raise ModelBytesError(f"tensor {key!r} is not float32; a flat view needs float32 throughout")
        shape = entry.get("shape")
        offsets = entry.get("data_offsets")
        if (
            not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
        ):
            raise ModelBytesError(f"tensor {key!r} has a malformed header entry: the file is corrupt")
        size = 4 * math.prod(shape)
        if offsets != [offset, offset + size]:
            raise ModelBytesError(
                f"tensor {key!r} is not where the canonical layout puts it: the file is corrupt or altered"
            )
        template[key] = torch.empty(tuple(shape), dtype=torch.float32, device="meta")
        offset += size
    if offset != len(data) - 8 - header_len:
        raise ModelBytesError(
            f"model file holds {len(data) - 8 - header_len} data bytes, its header describes {offset}"
        )
    with warnings.catch_warnings():
        # torch warns that `bytes` is not writable; the view is documented as read-only.
        warnings.simplefilter("ignore", UserWarning)
        flat = torch.frombuffer(data, dtype=torch.float32, offset=8 + header_len, count=offset // 4)
    return flat, template
