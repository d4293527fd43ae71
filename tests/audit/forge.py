"""A lying coordinator: commits rounds whose manifests it doctored (the audit must catch it).

The contract accepts these commitments: it checks the caller, the round order, the parent
digest and the on-chain participants' grants, never the content store. Everything the
contract cannot see is what the forger changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from fl_node.coordinator import JobState
from fl_node.model import initial_state
from ledger.chain.types import Receipt
from ledger.provenance import Attestation, RoundManifest, SignedAttestation, model_digest, sign_attestation
from tests.audit.conftest import World


@dataclass
class ForgedRound:
    """What the forger committed."""

    job: JobState
    round_number: int
    manifest: RoundManifest
    manifest_cid: str
    model_cid: str
    committed_digest: bytes
    receipt: Receipt


def new_job(world: World, extra_datasets: Sequence[int] = ()) -> JobState:
    """A fresh job over the world's datasets (plus `extra_datasets`), with one honest round."""
    federation = world.federation
    job = world.runner.coordinator.create_job(
        purpose=_purpose(world),
        datasets=tuple(federation.dataset_ids) + tuple(extra_datasets),
        spec=federation.spec,
        initial_state=initial_state(federation.spec),  # type: ignore[arg-type]
        seed=0,
    )
    world.runner.coordinator.run_round(job, world.runner.nodes)
    return job


def _purpose(world: World) -> bytes:
    from ledger.purposes import purpose_id

    return purpose_id(world.runner.config.purpose)


def sign(
    account: LocalAccount,
    world: World,
    job: JobState,
    round_number: int,
    dataset_id: int,
    num_examples: int,
    claimed: str | None = None,
) -> SignedAttestation:
    """An attestation for `dataset_id` signed by `account` (claiming `claimed` as signer when given)."""
    attestation = Attestation(
        job.job_id, round_number, dataset_id, hashlib.sha256(os.urandom(16)).digest(), num_examples
    )
    signed = sign_attestation(
        account, world.lab.chain_id, world.lab.deployment.address("TrainingLedger"), attestation
    )
    if claimed is None:
        return signed
    return SignedAttestation(
        signed.attestation, signed.chain_id, signed.ledger_address, signed.signature, claimed
    )


def honest_attestations(world: World, job: JobState, round_number: int) -> list[SignedAttestation]:
    """Properly signed attestations of the world's hospitals for `round_number`."""
    return [
        sign(owner.account, world, job, round_number, dataset_id, 100 + i)  # type: ignore[arg-type]
        for i, (owner, dataset_id) in enumerate(
            zip(world.enrollment.owners, world.federation.dataset_ids, strict=True)
        )
    ]


def commit_forged(
    world: World,
    job: JobState,
    attestations: Sequence[SignedAttestation],
    *,
    on_chain: Sequence[int] | None = None,
    stored_model: bytes | None = None,
    committed_digest: bytes | None = None,
    doctor: Callable[[RoundManifest], RoundManifest] | None = None,
) -> ForgedRound:
    """Commits the job's next round with a manifest built from `attestations`, then doctored.

    `on_chain`: the participants the contract records (default: every attested job dataset);
    `stored_model`: the bytes anchored under the manifest's model CID; `committed_digest`:
    the digest committed on chain and written in the manifest (default: sha256 of the bytes).
    """
    round_number = job.last_round + 1
    model_bytes = stored_model if stored_model is not None else b"forged model " + os.urandom(32)
    model_cid = world.store.put(model_bytes)
    digest = committed_digest if committed_digest is not None else model_digest(model_bytes)
    manifest = RoundManifest.from_attestations(
        purpose=job.purpose,
        spec_digest=job.spec.spec_digest(),
        parent_digest=job.last_digest,
        model_digest=digest,
        model_cid=model_cid,
        signed_attestations=attestations,
    )
    if doctor is not None:
        manifest = doctor(manifest)
    manifest_cid = world.store.put(manifest.to_bytes())
    participants = (
        on_chain
        if on_chain is not None
        else [s.attestation.dataset_id for s in attestations if s.attestation.dataset_id in job.job_datasets]
    )
    receipt = world.lab.commit_round(
        job.job_id,
        round_number,
        job.last_digest,
        digest,
        manifest_cid,
        job.job_datasets,
        participants,
        manifest.attestations_root,
    )
    job.last_round, job.last_digest, job.last_model_cid = round_number, digest, model_cid
    return ForgedRound(job, round_number, manifest, manifest_cid, model_cid, digest, receipt)
