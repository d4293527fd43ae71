"""Model bytes: deterministic across key orders and processes; damage is always an error."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fl_node.model import initial_state
from fl_node.spec import ModelSpec
from ledger.aggregation import flatten, unflatten
from ledger.modelfile import ModelBytesError, flat_from_bytes, model_from_bytes, model_to_bytes

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec(input_dim=64, num_classes=10, hidden=(32, 16), seed=7)


def test_same_weights_same_bytes_in_any_key_order_and_layout() -> None:
    state = initial_state(SPEC)
    reordered = dict(reversed(list(state.items())))
    # A transposed-then-transposed tensor is non-contiguous but holds the same values.
    strided = {k: (v.t().contiguous().t() if v.ndim == 2 else v) for k, v in state.items()}
    assert not all(v.is_contiguous() for v in strided.values())
    assert model_to_bytes(state) == model_to_bytes(reordered) == model_to_bytes(strided)
    back = model_from_bytes(model_to_bytes(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_bytes_identical_in_another_process() -> None:
    here = model_to_bytes(initial_state(SPEC))
    code = (
        "import sys, hashlib\n"
        "from fl_node.model import initial_state\n"
        "from ledger.modelfile import model_to_bytes\n"
        "from fl_node.spec import ModelSpec\n"
        "spec = ModelSpec.from_json(sys.argv[1])\n"
        "state = initial_state(spec)\n"
        "state = dict(sorted(state.items(), reverse=True))\n"
        "print(hashlib.sha256(model_to_bytes(state)).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, SPEC.canonical_json().decode()],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.stdout.strip() == hashlib.sha256(here).hexdigest()


def test_flat_view_matches_flatten() -> None:
    state = initial_state(SPEC)
    flat, template = flat_from_bytes(model_to_bytes(state))
    assert torch.equal(flat, flatten(state))
    rebuilt = unflatten(flat, template)
    assert all(torch.equal(rebuilt[k], state[k]) for k in state)


def test_tampered_weight_detected_by_digest() -> None:
    data = model_to_bytes(initial_state(SPEC))
    digest = hashlib.sha256(data).digest()
    tampered = bytearray(data)
    tampered[-3] ^= 0x01  # a bit inside the last weight: still a well-formed file
    with pytest.raises(ModelBytesError, match="the file was altered or is another model"):
        model_from_bytes(bytes(tampered), expected_digest=digest)
    assert model_from_bytes(data, expected_digest=digest).keys() == initial_state(SPEC).keys()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:5], "truncated: 5 bytes"),
        (lambda b: b[:-4], "corrupt"),
        (lambda b: b + b"\x00\x00\x00\x00", "corrupt|canonical"),
        (lambda b: b[:8] + b"[" + b[9:], "header is not valid JSON"),
        (lambda b: (10**9).to_bytes(8, "little") + b[8:], "header claims 1000000000 bytes"),
        (lambda b: b"\x00" * len(b), "corrupt|no tensors"),
    ],
)
def test_corrupt_bytes_are_errors(damage: object, message: str) -> None:
    data = model_to_bytes(initial_state(SPEC))
    damaged = damage(data)  # type: ignore[operator]
    with pytest.raises(ModelBytesError, match=message):
        model_from_bytes(damaged)


def test_non_canonical_header_is_refused() -> None:
    data = model_to_bytes({"w": torch.ones(2)})
    header_len = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + header_len].rstrip(b" ")
    # Same tensors, with the header's spacing changed: parses, but is not canonical.
    spaced = header.replace(b":", b": ", 1)
    padded = spaced + b" " * ((8 - len(spaced) % 8) % 8)
    forged = len(padded).to_bytes(8, "little") + padded + data[8 + header_len :]
    with pytest.raises(ModelBytesError, match="not in canonical form"):
        model_from_bytes(forged)


def test_metadata_is_refused() -> None:
    from safetensors.torch import save

    data = save({"w": torch.ones(2)}, metadata={"owner": "x"})
    with pytest.raises(ModelBytesError, match="carries metadata"):
        model_from_bytes(data)
    with pytest.raises(ModelBytesError, match="carries metadata"):
        flat_from_bytes(data)


def test_flat_view_refuses_other_dtypes() -> None:
    data = model_to_bytes({"w": torch.ones(2, dtype=torch.float64)})
    with pytest.raises(ModelBytesError, match="'w' is not float32"):
        flat_from_bytes(data)


def test_empty_state_is_refused() -> None:
    with pytest.raises(ModelBytesError, match="empty model state"):
        model_to_bytes({})
