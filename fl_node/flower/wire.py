"""What the ledger adds to Flower's messages, and how models travel as Flower arrays.

Flower carries a model as a list of arrays and a round's instructions and results as flat
`str -> scalar` records. The ledger needs more: the job and its dataset list (uint256 ids,
too wide for a record integer, so 0x-hex strings), and on the way back the node's signed
attestation. Everything the two sides exchange goes through this module, so the keys and
encodings are defined once.

A model's arrays are listed in sorted key order, the order safetensors stores them and
`ledger.aggregation` lays them out, so `model_to_bytes(state)` (whose sha256 the chain holds)
is the same whichever side rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import numpy.typing as npt
import torch

from ledger.provenance import Attestation, SignedAttestation

from ..errors import FLError
from ..model import StateDict, initial_state
from ..spec import ModelSpec

# What a Flower ConfigRecord / metrics dict may hold.
Scalar = Union[bool, bytes, float, int, str]  # noqa: UP007 (mirrors flwr.common.Scalar)
NDArrays = list[npt.NDArray[np.generic]]

PREFIX = "sov."
JOB_ID = "sov.job_id"
ROUND = "sov.round"
JOB_DATASETS = "sov.job_datasets"
SPEC = "sov.spec"
SEED = "sov.seed"
# Reply keys (in FitRes.metrics).
DATASET_ID = "sov.dataset_id"
BASE_DIGEST = "sov.base_digest"
SPEC_DIGEST = "sov.spec_digest"
UPDATE_DIGEST = "sov.update_digest"
SIGNATURE = "sov.signature"
SIGNER = "sov.signer"
CHAIN_ID = "sov.chain_id"
LEDGER = "sov.training_ledger"
REFUSED = "sov.refused"
REFUSAL_MESSAGE = "sov.refusal_message"


class WireError(FLError, ValueError):
    """A Flower message lacks a ledger field or holds one that does not parse."""


@dataclass(frozen=True)
class RoundInstructions:
    """What the strategy tells every node about the round (inside `FitIns.config`)."""

    job_id: int
    round_number: int
    job_datasets: tuple[int, ...]
    spec_json: str
    seed: int

    def to_config(self) -> dict[str, Scalar]:
        """The `FitIns.config` entries (merged with whatever the inner strategy sends)."""
        return {
            JOB_ID: self.job_id,
            ROUND: self.round_number,
            JOB_DATASETS: ",".join(f"0x{d:064x}" for d in self.job_datasets),
            SPEC: self.spec_json,
            SEED: self.seed,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Scalar]) -> RoundInstructions:
        """Parses the entries `to_config` wrote; raises `WireError` naming a missing or bad one."""
        try:
            datasets_text = _get_str(config, JOB_DATASETS)
            return cls(
                job_id=_get_int(config, JOB_ID),
                round_number=_get_int(config, ROUND),
                job_datasets=tuple(int(part, 16) for part in datasets_text.split(",") if part),
                spec_json=_get_str(config, SPEC),
                seed=_get_int(config, SEED),
            )
        except ValueError as error:
            if isinstance(error, WireError):
                raise
            raise WireError(f"round instructions do not parse: {error}") from None

    @property
    def spec(self) -> ModelSpec:
        """The job's model spec."""
        return ModelSpec.from_json(self.spec_json)


def is_ledger_round(config: Mapping[str, Scalar]) -> bool:
    """Whether a fit instruction comes from a ledger strategy (carries a job id)."""
    return JOB_ID in config


def _present(record: Mapping[str, Scalar], key: str) -> Scalar:
    if key not in record:
        raise WireError(f"Flower message has no {key!r} entry; is the server running LedgerStrategy?")
    return record[key]


def _get_int(record: Mapping[str, Scalar], key: str) -> int:
    value = _present(record, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{key!r} must be an integer, got {value!r}")
    return value


def _get_str(record: Mapping[str, Scalar], key: str) -> str:
    value = _present(record, key)
    if not isinstance(value, str):
        raise WireError(f"{key!r} must be a string, got {value!r}")
    return value


# ----------------------------------------------------------------------------- models


def state_to_ndarrays(state: Mapping[str, torch.Tensor]) -> NDArrays:
    """A state dict as Flower arrays, keys in sorted order."""
    return [state[key].detach().to("cpu").contiguous().numpy() for key in sorted(state)]


def ndarrays_to_state(spec: ModelSpec, arrays: Sequence[npt.NDArray[np.generic]]) -> StateDict:
    """Flower arrays back into the named state of `spec`'s model; a misfit is a `WireError`."""
    template = initial_state(spec)
    keys = sorted(template)
    if len(arrays) != len(keys):
        raise WireError(f"model has {len(arrays)} arrays, the job's spec needs {len(keys)}")
    state: StateDict = {}
    for key, array in zip(keys, arrays, strict=True):
        if tuple(array.shape) != tuple(template[key].shape) or array.dtype != np.float32:
            raise WireError(
                f"array for {key!r} is {array.dtype}{tuple(array.shape)}, the spec needs "
                f"float32{tuple(template[key].shape)}"
            )
        state[key] = torch.from_numpy(np.ascontiguousarray(array).copy())
    return state


# ----------------------------------------------------------------------------- replies


def attestation_to_metrics(signed: SignedAttestation) -> dict[str, Scalar]:
    """The signed attestation as `FitRes.metrics` entries (job, round and count travel already)."""
    att = signed.attestation
    return {
        DATASET_ID: f"0x{att.dataset_id:064x}",
        BASE_DIGEST: "0x" + att.base_digest.hex(),
        SPEC_DIGEST: "0x" + att.spec_digest.hex(),
        UPDATE_DIGEST: "0x" + att.update_digest.hex(),
        SIGNATURE: signed.signature,
        SIGNER: signed.signer,
        CHAIN_ID: signed.chain_id,
        LEDGER: signed.ledger_address,
    }


def attestation_from_metrics(
    metrics: Mapping[str, Scalar], *, job_id: int, round_number: int, num_examples: int
) -> SignedAttestation:
    """Rebuilds a node's signed attestation; verifiers still recover the signer themselves."""
    try:
        attestation = Attestation(
            job_id=job_id,
            round=round_number,
            dataset_id=int(_get_str(metrics, DATASET_ID), 16),
            base_digest=bytes.fromhex(_get_str(metrics, BASE_DIGEST).removeprefix("0x")),
            spec_digest=bytes.fromhex(_get_str(metrics, SPEC_DIGEST).removeprefix("0x")),
            update_digest=bytes.fromhex(_get_str(metrics, UPDATE_DIGEST).removeprefix("0x")),
            num_examples=num_examples,
        )
    except ValueError as error:
        if isinstance(error, WireError):
            raise
        raise WireError(f"attestation in the reply does not parse: {error}") from None
    return SignedAttestation(
        attestation=attestation,
        chain_id=_get_int(metrics, CHAIN_ID),
        ledger_address=_get_str(metrics, LEDGER),
        signature=_get_str(metrics, SIGNATURE),
        signer=_get_str(metrics, SIGNER),
    )


def dataset_id_from_metrics(metrics: Mapping[str, Scalar]) -> int | None:
    """The dataset a reply speaks for, when it names one."""
    value = metrics.get(DATASET_ID)
    if not isinstance(value, str):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def refusal_metrics(dataset_id: int | None, reason: str, message: str) -> dict[str, Scalar]:
    """The `FitRes.metrics` of a refusal: a stable reason code and a sentence."""
    metrics: dict[str, Scalar] = {REFUSED: reason, REFUSAL_MESSAGE: message}
    if dataset_id is not None:
        metrics[DATASET_ID] = f"0x{dataset_id:064x}"
    return metrics


def training_metrics(metrics: Mapping[str, Scalar]) -> dict[str, float]:
    """The numeric, non-ledger entries of a reply (the node's own training metrics)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if not key.startswith(PREFIX) and isinstance(value, int | float) and not isinstance(value, bool)
    }
