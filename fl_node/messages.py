"""What a coordinator and a data owner's node say to each other in one round."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.provenance import SignedAttestation


@dataclass(frozen=True)
class RoundRequest:
    """The coordinator asks a node to train one round on top of the job's current model."""

    job_id: int
    round_number: int
    job_datasets: tuple[int, ...]
    base_model_cid: str
    base_digest: bytes
    spec_json: str
    seed: int
    # The datasets the coordinator selected for this round (a node refuses a round with fewer
    # than its grant's minimum participants; empty = not declared, refused when a minimum is set).
    participants: tuple[int, ...] = ()
    # DP-SGD asked for by the job: noise multiplier (0 = the node calibrates it to its budget over
    # `dp_planned_rounds` rounds), per-sample clipping norm (0 = 1.0). Used only when the grant
    # sets a privacy budget.
    dp_noise_multiplier: float = 0.0
    dp_max_grad_norm: float = 0.0
    dp_planned_rounds: int = 0


@dataclass(frozen=True)
class NodeUpdate:
    """A node's trained weights, its example count and its signed attestation."""

    dataset_id: int
    update_bytes: bytes
    num_examples: int
    attestation: SignedAttestation
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeRefusal:
    """A node declined the round; `reason` is a stable code, `message` a sentence."""

    dataset_id: int
    reason: str
    message: str


NodeReply = NodeUpdate | NodeRefusal
