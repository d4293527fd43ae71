"""The data owner's node: gate on-chain, train locally, attest the update.

A node holds its owner's data and key and its own chain connection. It never trains
unless `gate.check_round` passes at the latest block: the deed is its owner's (its own
account or its configured EIP-1271 `owner_wallet`), the job's coordinator holds a valid
grant, the base model it was sent is the job's last committed model and the spec it was
sent hashes to the job's on-chain spec digest. It then signs an EIP-712 attestation
binding the job, round and dataset, the base and spec digests it checked, and its
update's digest and example count.

Refusal reasons: every `gate.REASONS` code, plus `bad_request` (the spec does not parse),
`ledger_unavailable` (no answer from the chain or the store: no permission),
`base_model_mismatch` (the base model's bytes do not hash to the checked digest) and
`training_failed`.

When the grant sets a privacy budget (`GrantTerms.epsilon` > 0) the node trains with DP-SGD
(`train.train_local_dp`) and spends the budget recorded in its owner's data directory
(`fl_node.privacy.BudgetLedger`, `$SOV_HOME/privacy/`): it refuses with
`privacy_budget_exhausted` a round that would take the dataset's cumulative epsilon for the
grantee and purpose past the budget, records the round before its update leaves and attests the
DP parameters and the cumulative epsilon (`ledger.provenance.PrivacyClaim`). The gate refuses a
round with fewer declared participants than the grant's minimum (`too_few_participants`).
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from ledger.chain.client import LedgerClient
from ledger.chain.types import GrantRecord
from ledger.errors import LedgerError
from ledger.modelfile import ModelBytesError, model_from_bytes, model_to_bytes
from ledger.privacy import PrivacyError
from ledger.provenance import Attestation, PrivacyClaim, model_digest, sign_attestation
from ledger.settings import default_home
from ledger.store import ContentStore

from . import gate
from .errors import FLError, RoundRefusedError
from .messages import NodeRefusal, NodeReply, NodeUpdate, RoundRequest
from .privacy import BudgetLedger, PlannedRound
from .spec import ModelSpec
from .train import round_seed, train_local, train_local_dp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """What the gate admitted: the base model's bytes and the spec whose digest it checked."""

    base_bytes: bytes
    spec: ModelSpec
    spec_digest: bytes
    grantee: str = ""
    purpose: bytes = b""
    private: PlannedRound | None = None


@dataclass
class DataOwnerNode:
    """One hospital's worker: its dataset, its key, its chain connection and content store.

    `owner_wallet` is the EIP-1271 contract wallet that holds the dataset's deed when the
    node's own account does not; the wallet must accept the node key's signatures. `budget`
    keeps the dataset's privacy spending (default: `$SOV_HOME/privacy/`).
    """

    dataset_id: int
    features: np.ndarray
    labels: np.ndarray
    account: LocalAccount
    client: LedgerClient
    store: ContentStore
    owner_wallet: str | None = None
    budget: BudgetLedger = field(
        default_factory=lambda: BudgetLedger(Path(os.environ.get("SOV_HOME") or default_home()))
    )

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

    def admit(self, request: RoundRequest) -> NodeRefusal | Admission:
        """The gate: the base model and checked spec when this node may train, a refusal otherwise."""
        try:
            spec = ModelSpec.model_validate_json(request.spec_json)
        except ValidationError as error:
            return NodeRefusal(self.dataset_id, "bad_request", f"the model spec sent does not parse: {error}")
        spec_digest = spec.spec_digest()
        try:
            admitted = gate.check_round(
                self.client,
                dataset_id=self.dataset_id,
                job_id=request.job_id,
                job_datasets=request.job_datasets,
                base_digest=request.base_digest,
                spec_digest=spec_digest,
                node_key=self.account,
                owner_wallet=self.owner_wallet,
                participants=request.participants or None,
            )
            job = admitted.job
            private = self._plan_privacy(request, spec, job.coordinator, job.purpose, admitted.grant)
            base_bytes = self.store.get(request.base_model_cid)
        except RoundRefusedError as refusal:
            log.info("dataset %#x refuses round %d: %s", self.dataset_id, request.round_number, refusal)
            return NodeRefusal(self.dataset_id, refusal.reason, str(refusal))
        except PrivacyError as error:
            return NodeRefusal(self.dataset_id, "bad_request", f"DP parameters: {error}")
        except LedgerError as error:
            return NodeRefusal(self.dataset_id, "ledger_unavailable", str(error))
        if model_digest(base_bytes) != request.base_digest:
            return NodeRefusal(
                self.dataset_id,
                "base_model_mismatch",
                f"bytes of {request.base_model_cid} do not hash to the base digest "
                f"0x{request.base_digest.hex()}",
            )
        return Admission(base_bytes, spec, spec_digest, job.coordinator, job.purpose, private)

    def _plan_privacy(
        self, request: RoundRequest, spec: ModelSpec, grantee: str, purpose: bytes, grant: GrantRecord
    ) -> PlannedRound | None:
        terms = grant.terms
        if not terms.epsilon:
            return None
        return self.budget.plan_round(
            chain_id=self.client.chain_id,
            dataset_id=self.dataset_id,
            grantee=grantee,
            purpose=purpose,
            job_id=request.job_id,
            round_number=request.round_number,
            terms=terms,
            num_examples=len(self.labels),
            batch_size=spec.batch_size,
            local_epochs=spec.local_epochs,
            noise_multiplier=request.dp_noise_multiplier,
            max_grad_norm=request.dp_max_grad_norm,
            planned_rounds=request.dp_planned_rounds,
        )

    def train(self, request: RoundRequest, admitted: Admission) -> NodeReply:
        """Trains on the admitted base model and signs the attestation of the update."""
        try:
            state = model_from_bytes(admitted.base_bytes)
            seed = round_seed(request.seed, request.round_number, self.dataset_id)
            private = admitted.private
            if private is None:
                new_state, num_examples, metrics = train_local(
                    admitted.spec, state, self.features, self.labels, round_seed=seed
                )
            else:
                new_state, num_examples, metrics = train_local_dp(
                    admitted.spec, state, self.features, self.labels, seed, private.dp
                )
        except (FLError, ModelBytesError) as error:
            return NodeRefusal(self.dataset_id, "training_failed", str(error))
        update_bytes = model_to_bytes(new_state)
        claim = None
        if private is not None:
            # Spent before the update leaves the node.
            self.budget.record(
                chain_id=self.client.chain_id,
                dataset_id=self.dataset_id,
                grantee=admitted.grantee,
                purpose=admitted.purpose,
                job_id=request.job_id,
                round_number=request.round_number,
                dp=private.dp,
            )
            claim = PrivacyClaim(private.dp, private.epsilon_after_e6)
            metrics = {**metrics, "epsilon_spent": private.epsilon_after}
        attestation = Attestation(
            job_id=request.job_id,
            round=request.round_number,
            dataset_id=self.dataset_id,
            # Both were checked by the gate: the base against the chain and the bytes, the
            # spec digest against the job's.
            base_digest=request.base_digest,
            spec_digest=admitted.spec_digest,
            update_digest=model_digest(update_bytes),
            num_examples=num_examples,
            privacy=claim,
        )
        signed = sign_attestation(
            self.account,
            self.client.chain_id,
            self.client.deployment.addresses["TrainingLedger"],
            attestation,
        )
        return NodeUpdate(self.dataset_id, update_bytes, num_examples, signed, dict(metrics))
