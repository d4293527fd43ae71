"""The model spec: everything that decides what a federated job learns, as one digest.

A job's spec (architecture, optimiser, local schedule, seed) is committed on-chain as
`spec_digest()`: the sha256 of its canonical JSON. Two parties that hold the same spec
build the same initial model and run the same local training, so an auditor can tell
which recipe produced a model without trusting the coordinator's word.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Activation = Literal["relu", "tanh", "gelu"]
OptimizerName = Literal["sgd", "adam"]


class ModelSpec(BaseModel):
    """An MLP classifier and its local training recipe (immutable; its digest goes on-chain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_dim: int = Field(gt=0, description="number of input features")
    num_classes: int = Field(ge=2, description="number of output classes")
    hidden: tuple[int, ...] = Field(default=(512,), description="hidden layer widths")
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    optimizer: OptimizerName = "adam"
    lr: float = Field(default=3e-3, gt=0.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0, description="SGD momentum (ignored by adam)")
    weight_decay: float = Field(default=0.0, ge=0.0)
    proximal_mu: float = Field(
        default=0.0, ge=0.0, description="FedProx term mu/2*||w - w_global||^2 (0 = plain FedAvg)"
    )
    local_epochs: int = Field(default=2, gt=0)
    batch_size: int = Field(default=32, gt=0)
    seed: int = Field(default=0, ge=0, lt=2**63, description="seed of the initial weights")

    @model_validator(mode="after")
    def _check_hidden(self) -> ModelSpec:
        if any(width <= 0 for width in self.hidden):
            raise ValueError(f"hidden layer widths must be positive, got {list(self.hidden)}")
        return self

    def canonical_json(self) -> bytes:
        """UTF-8 JSON with sorted keys and no whitespace: the bytes `spec_digest` hashes."""
        return canonical_json(self.model_dump(mode="json"))

    def spec_digest(self) -> bytes:
        """sha256 of the canonical JSON (32 bytes), the value `createJob` records on-chain."""
        return hashlib.sha256(self.canonical_json()).digest()

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelSpec:
        """Parse a spec from JSON (canonical or not); unknown fields are an error."""
        return cls.model_validate_json(data)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def default_spec(input_dim: int, num_classes: int, **overrides: Any) -> ModelSpec:
    """The default recipe, tuned for non-IID federations (see `bench/bench_accuracy.py`).

    The seed's recipe (SGD lr 0.01, 5 local epochs, two hidden layers, dropout 0.5) reaches
    ~0.81 on `digits` with 10 nodes holding 80% of one class each. Adam (lr 3e-3) on
    standardised inputs, one 512-wide hidden layer, no dropout and only 2 local epochs (less
    drift towards each node's dominant class per round) reaches 0.96-0.98 in 20 rounds.
    """
    return ModelSpec(input_dim=input_dim, num_classes=num_classes, **overrides)
