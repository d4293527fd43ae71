"""Build the job's torch MLP from its `ModelSpec`, with seeded, reproducible weights."""

from __future__ import annotations

import torch
from torch import nn

from .errors import FLError
from .spec import ModelSpec

StateDict = dict[str, torch.Tensor]


class ModelStateError(FLError, ValueError):
    """A state dict does not fit the job's spec (wrong keys or shapes)."""


_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_model(spec: ModelSpec) -> nn.Sequential:
    """The MLP of `spec` with initial weights drawn from `spec.seed`.

    The global RNG is forked, so building a model neither depends on nor disturbs the
    caller's random state: the same spec gives the same weights in any process.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        layers: list[nn.Module] = []
        width = spec.input_dim
        for hidden in spec.hidden:
            layers.append(nn.Linear(width, hidden))
            layers.append(_ACTIVATIONS[spec.activation]())
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
        layers.append(nn.Linear(width, spec.num_classes))
        return nn.Sequential(*layers)


def initial_state(spec: ModelSpec) -> StateDict:
    """The round-0 global model: detached, contiguous float32 CPU tensors."""
    return export_state(build_model(spec))


def export_state(model: nn.Module) -> StateDict:
    """A model's state dict as independent contiguous CPU tensors (safe to keep across training)."""
    return {
        name: t.detach().to("cpu", torch.float32).contiguous().clone()
        for name, t in model.state_dict().items()
    }


def load_state(spec: ModelSpec, state: StateDict) -> nn.Sequential:
    """A model of `spec` holding `state`; a state that does not fit the spec is an error."""
    model = build_model(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelStateError(
            f"model state does not fit the spec: missing {missing}, unexpected {unexpected}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelStateError(
                f"model state does not fit the spec: {name!r} has shape {tuple(state[name].shape)}, "
                f"the spec needs {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    return model
