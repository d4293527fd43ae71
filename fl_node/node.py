"""The data owner's node: gate on-chain, train locally, attest the update.

A node holds its owner's data and key and its own chain connection. It never trains
unless `gate.check_round` passes at the latest block, and it signs an EIP-712 attestation
binding its update's digest and example count to the job, round and dataset.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerClient
from ledger.errors import LedgerError
from ledger.modelfile import model_from_bytes, model_to_bytes
from ledger.provenance import Attestation, model_digest, sign_attestation
from ledger.store import ContentStore

from . import gate
from .errors import FLError, RoundRefusedError
from .messages import NodeRefusal, NodeReply, NodeUpdate, RoundRequest
from .spec import ModelSpec
from .train import round_seed, train_local

log = logging.getLogger(__name__)


@dataclass
class DataOwnerNode:
    """One hospital's worker: its dataset, its key, its chain connection and content store."""

    dataset_id: int
    features: np.ndarray
    labels: np.ndarray
    account: LocalAccount
    client: LedgerClient
    store: ContentStore

    def handle(
        self, request: RoundRequest, training_lock: AbstractContextManager[object] | None = None
    ) -> NodeReply:
        """Runs one round: refuses with a reason, or returns the signed update.

        The on-chain gate and the base-model fetch run outside `training_lock`, so the
        nodes of one process check the chain concurrently and only take turns to train.
        """
        admitted = self.admit(request)
        if isinstance(admitted, NodeRefusal):
            return admitted
        with training_lock or nullcontext():
            return self.train(request, admitted)

    def admit(self, request: RoundRequest) -> NodeRefusal | bytes:
        """The gate: the base model's bytes when this node may train, a refusal otherwise."""
        try:
            gate.check_round(
                self.client,
                dataset_id=self.dataset_id,
                job_id=request.job_id,
                job_datasets=request.job_datasets,
                base_digest=request.base_digest,
            )
            base_bytes = self.store.get(request.base_model_cid)
        except RoundRefusedError as refusal:
            log.info("dataset %#x refuses round %d: %s", self.dataset_id, request.round_number, refusal)
            return NodeRefusal(self.dataset_id, refusal.reason, str(refusal))
        except LedgerError as error:
            return NodeRefusal(self.dataset_id, "ledger_unavailable", str(error))
        if model_digest(base_bytes) != request.base_digest:
            return NodeRefusal(
                self.dataset_id,
                "base_model_mismatch",
                f"bytes of {request.base_model_cid} do not hash to the base digest "
                f"0x{request.base_digest.hex()}",
            )
        return base_bytes

    def train(self, request: RoundRequest, base_bytes: bytes) -> NodeReply:
        """Trains on the admitted base model and signs the attestation of the update."""
        spec = ModelSpec.model_validate_json(request.spec_json)
        try:
            state = model_from_bytes(base_bytes)
            new_state, num_examples, metrics = train_local(
                spec,
                state,
                self.features,
                self.labels,
                round_seed=round_seed(request.seed, request.round_number, self.dataset_id),
            )
        except FLError as error:
            return NodeRefusal(self.dataset_id, "training_failed", str(error))
        update_bytes = model_to_bytes(new_state)
        attestation = Attestation(
            job_id=request.job_id,
            round=request.round_number,
            dataset_id=self.dataset_id,
            update_digest=model_digest(update_bytes),
            num_examples=num_examples,
        )
        signed = sign_attestation(
            self.account,
            self.client.chain_id,
            self.client.deployment.addresses["TrainingLedger"],
            attestation,
        )
        return NodeUpdate(self.dataset_id, update_bytes, num_examples, signed, dict(metrics))
