"""The model spec: everything that decides what a federated job learns, as one digest.

A job's spec (architecture, optimiser, local schedule, seed and, for tabular data, the
preprocessing every hospital applies to its own file) is committed on-chain as
`spec_digest()`: the sha256 of its canonical JSON. Two parties that hold the same spec
build the same initial model, prepare their data the same way and run the same local
training, so an auditor can tell which recipe produced a model without trusting the
coordinator's word.

The digest is also the content root of the canonical JSON's CIDv1 (a single raw block),
so whoever holds the spec file can find it by the on-chain digest alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Activation = Literal["relu", "tanh", "gelu"]
OptimizerName = Literal["sgd", "adam"]


class NumericColumn(BaseModel):
    """A numeric feature: missing cells get `fill`, then `(value - mean) / scale`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["numeric"] = "numeric"
    mean: float
    scale: float = Field(gt=0.0)
    fill: float = Field(description="the value imputed for a missing cell (before scaling)")

    @property
    def width(self) -> int:
        """Features this column contributes."""
        return 1


class CategoricalColumn(BaseModel):
    """A categorical feature, one-hot over `categories`; a missing or unlisted value is all zeros."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["categorical"] = "categorical"
    categories: tuple[str, ...] = Field(min_length=1)

    @property
    def width(self) -> int:
        """Features this column contributes."""
        return len(self.categories)


Column = Annotated[NumericColumn | CategoricalColumn, Field(discriminator="kind")]


class PreprocessingSpec(BaseModel):
    """How every hospital turns its own table into features: part of the job's spec digest.

    The statistics (means, scales, fill values, category lists) are constants of the job,
    not of a hospital's file: every node prepares its rows with the same function, so a
    feature means the same thing everywhere and the audit can name the preparation used.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1, description="the label column")
    classes: tuple[str, ...] = Field(min_length=2, description="label values, in class-index order")
    columns: tuple[Column, ...] = Field(min_length=1, description="feature columns, in feature order")

    @model_validator(mode="after")
    def _check_names(self) -> PreprocessingSpec:
        names = [column.name for column in self.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"preprocessing lists columns {duplicates} more than once")
        if self.label in names:
            raise ValueError(f"the label column {self.label!r} cannot also be a feature column")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"preprocessing classes repeat a value: {list(self.classes)}")
        return self

    @property
    def width(self) -> int:
        """Number of features after encoding (the model's input_dim)."""
        return sum(column.width for column in self.columns)

    def describe(self) -> str:
        """One line for people: what is scaled, encoded and imputed."""
        numeric = [c for c in self.columns if isinstance(c, NumericColumn)]
        categorical = [c for c in self.columns if isinstance(c, CategoricalColumn)]
        return (
            f"label {self.label!r} ({len(self.classes)} classes); {len(numeric)} numeric column(s) "
            f"standardised with fixed mean/scale, missing cells imputed; {len(categorical)} categorical "
            f"column(s) one-hot encoded; {self.width} features"
        )


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
    preprocessing: PreprocessingSpec | None = Field(
        default=None, description="how nodes prepare a table (CSV, Parquet); None: nodes hold .npz features"
    )

    @model_validator(mode="after")
    def _check_hidden(self) -> ModelSpec:
        if any(width <= 0 for width in self.hidden):
            raise ValueError(f"hidden layer widths must be positive, got {list(self.hidden)}")
        prep = self.preprocessing
        if prep is not None and (prep.width, len(prep.classes)) != (self.input_dim, self.num_classes):
            raise ValueError(
                f"the preprocessing gives {prep.width} features and {len(prep.classes)} classes, "
                f"but the model has input_dim {self.input_dim} and num_classes {self.num_classes}"
            )
        return self

    def canonical_json(self) -> bytes:
        """UTF-8 JSON with sorted keys and no whitespace: the bytes `spec_digest` hashes.

        A spec without preprocessing omits the key, so its digest is the one it always had.
        """
        document = self.model_dump(mode="json")
        if document["preprocessing"] is None:
            del document["preprocessing"]
        return canonical_json(document)

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
