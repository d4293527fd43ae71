"""A lying coordinator: commits rounds it built itself, with real contracts, keys, store and FedAvg.

The contract accepts these commitments: it checks the caller, the round order, the parent
digest and the on-chain participants' grants, never the content store. Everything the
contract cannot see is what the forger changes: the model bytes, the manifest, which
updates it averaged, which update bytes it hands over.

`Lab` is a chain (anvil) with the contracts, hospitals that registered datasets and granted
the lab, and the lab's content store. `commit` builds a round from `Contribution`s exactly as
an honest coordinator would (hospitals sign v2 attestations over their real update files, the
lab stores the updates, aggregates with `ledger.aggregation.aggregate_updates`, anchors model
and manifest, commits), and each keyword argument is one lie.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.aggregation import aggregate_updates
from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.chain.types import Receipt
from ledger.devnet import NodeProcess
from ledger.index import EventIndex
from ledger.modelfile import model_to_bytes
from ledger.provenance import (
    Attestation,
    RoundManifest,
    SignedAttestation,
    model_digest,
    sign_attestation,
)
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import LocalBlockstore

AI = purpose_id("ai-training")
SPEC = hashlib.sha256(b"forge: the job's model spec").digest()


@dataclass
class Hospital:
    """A data owner: its signing key, its client, its dataset; `wallet` when a contract wallet owns it."""

    account: LocalAccount
    client: LedgerClient
    dataset_id: int
    wallet: str | None = None

    @property
    def owner(self) -> str:
        """The deed holder (the wallet, or the key's address)."""
        return self.wallet or str(self.account.address)


@dataclass
class Lab:
    """A chain with hospitals that granted the lab, and the lab's own store."""

    node: NodeProcess
    settings: Settings
    lab: LedgerClient
    store: LocalBlockstore
    hospitals: list[Hospital]

    def index(self, path: Path) -> EventIndex:
        """A fresh index file for this chain."""
        return EventIndex(path, self.lab)


@dataclass
class Job:
    """What the forger knows about its job."""

    job_id: int
    datasets: tuple[int, ...]
    purpose: bytes
    spec_digest: bytes
    last_digest: bytes
    last_round: int = 0
    initial: bytes = b""


@dataclass
class Contribution:
    """One hospital's part in a round: its update file and example count (and who signs)."""

    hospital: Hospital
    update: bytes
    num_examples: int
    signer: LocalAccount | None = None  # default: the hospital's own key
    base_digest: bytes | None = None  # default: the job's last digest
    spec_digest: bytes | None = None  # default: the job's spec digest


@dataclass
class Forged:
    """What the forger committed."""

    round_number: int
    manifest: RoundManifest
    manifest_cid: str
    model_cid: str
    model_bytes: bytes
    committed_digest: bytes
    update_cids: dict[int, str]
    receipt: Receipt
    contributions: list[Contribution] = field(default_factory=list)


def weights(seed: int) -> bytes:
    """A small model file (two float32 tensors) whose values depend on `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return model_to_bytes(
        {
            "layer.weight": torch.randn(4, 3, generator=generator),
            "layer.bias": torch.randn(4, generator=generator),
        }
    )


def deploy_wallet(lab: Lab, signer: LocalAccount) -> str:
    """Deploys a `MockSignerWallet` (EIP-1271: accepts what `signer` signs); returns its address."""
    artifact = load_artifact("MockSignerWallet")
    client = lab.lab.with_account(signer)
    receipt = client._sender.transact(  # type: ignore[union-attr]
        None, artifact.bytecode + encode(["address"], [signer.address]).hex(), "deploy wallet"
    )
    return to_checksum_address(receipt["contractAddress"])


def wallet_execute(lab: Lab, signer: LocalAccount, wallet: str, contract: str, calldata: str) -> None:
    """Has `wallet` call `contract` with `calldata` (the wallet's signer sends the transaction)."""
    call = keccak(text="execute(address,bytes)")[:4] + encode(
        ["address", "bytes"], [lab.lab.deployment.address(contract), bytes.fromhex(calldata[2:])]
    )
    lab.lab.with_account(signer)._sender.transact(  # type: ignore[union-attr]
        wallet, "0x" + call.hex(), "wallet call"
    )


def enrol_wallet_hospital(lab: Lab, signer: LocalAccount, label: str) -> Hospital:
    """A hospital whose deed is held by a contract wallet that `signer` drives, granting the lab."""
    wallet = deploy_wallet(lab, signer)
    root = keccak(text=f"forge wallet dataset {label}")
    abis = lab.lab.abis
    wallet_execute(
        lab,
        signer,
        wallet,
        "DatasetRegistry",
        abis["DatasetRegistry"].function("register", 3).encode_call([root, 0, ""]),
    )
    now = lab.lab.latest_block().timestamp
    grant = (
        abis["UsageGrants"]
        .function("issueGrant", 5)
        .encode_call([int.from_bytes(root, "big"), lab.lab.address, AI, now, now + 30 * 24 * 3600])
    )
    wallet_execute(lab, signer, wallet, "UsageGrants", grant)
    return Hospital(signer, lab.lab.with_account(signer), int.from_bytes(root, "big"), wallet)


def enrol_hospital(lab: Lab, account: LocalAccount, label: str) -> Hospital:
    """A hospital (an EOA) that registers a dataset and grants the lab for 30 days."""
    client = lab.lab.with_account(account)
    dataset_id, _ = client.register_dataset(keccak(text=f"forge dataset {label}"))
    now = lab.lab.latest_block().timestamp
    client.issue_grant(dataset_id, lab.lab.address or "", AI, now, now + 30 * 24 * 3600)
    return Hospital(account, client, dataset_id)


def create_job(lab: Lab, hospitals: Sequence[Hospital] | None = None, seed: int = 0) -> Job:
    """A job over `hospitals`' datasets (default: all) with a stored initial model."""
    chosen = list(hospitals if hospitals is not None else lab.hospitals)
    datasets = tuple(sorted(h.dataset_id for h in chosen))
    initial = weights(10_000 + seed)
    lab.store.put(initial)
    job_id, _ = lab.lab.create_job(AI, datasets, model_digest(initial), SPEC)
    return Job(job_id, datasets, AI, SPEC, model_digest(initial), 0, initial)


def contributions(hospitals: Sequence[Hospital], round_number: int, seed: int = 0) -> list[Contribution]:
    """Honest contributions: a distinct update and example count per hospital."""
    return [
        Contribution(h, weights(seed * 1000 + round_number * 100 + i), 50 + 7 * i)
        for i, h in enumerate(hospitals)
    ]


def sign(lab: Lab, job: Job, round_number: int, c: Contribution) -> SignedAttestation:
    """The v2 attestation of contribution `c`, signed by its signer (default: the hospital's key)."""
    attestation = Attestation(
        job_id=job.job_id,
        round=round_number,
        dataset_id=c.hospital.dataset_id,
        base_digest=c.base_digest if c.base_digest is not None else job.last_digest,
        spec_digest=c.spec_digest if c.spec_digest is not None else job.spec_digest,
        update_digest=hashlib.sha256(c.update).digest(),
        num_examples=c.num_examples,
    )
    signer = c.signer or c.hospital.account
    return sign_attestation(
        signer,  # type: ignore[arg-type]
        lab.lab.chain_id,
        lab.lab.deployment.address("TrainingLedger"),
        attestation,
    )


def commit(
    lab: Lab,
    job: Job,
    declared: Sequence[Contribution],
    *,
    averaged: Sequence[Contribution] | None = None,
    model_bytes: bytes | None = None,
    committed_digest: bytes | None = None,
    on_chain: Sequence[int] | None = None,
    stored_updates: Callable[[Contribution], bytes | None] | None = None,
    doctor: Callable[[RoundManifest], RoundManifest] | None = None,
    committed_root: bytes | None = None,
    raw_manifest: bytes | None = None,
) -> Forged:
    """Commits the job's next round, declaring `declared` in the manifest.

    Lies: `averaged` (the model is FedAvg of these instead of the declared ones),
    `model_bytes` (anchor these bytes as the model), `committed_digest` (commit and write this
    digest instead of the model's), `on_chain` (the participants the contract records; default:
    the declared job datasets), `stored_updates` (the bytes stored for each declared update,
    None = not stored; default: the update itself), `doctor` (edit the manifest before storing),
    `committed_root` (commit this attestation root), `raw_manifest` (store these bytes as the manifest).
    """
    round_number = job.last_round + 1
    signed = [sign(lab, job, round_number, c) for c in declared]
    mixed = sorted(averaged if averaged is not None else declared, key=lambda c: c.hospital.dataset_id)
    model = model_bytes
    if model is None:
        model = aggregate_updates([c.update for c in mixed], [c.num_examples for c in mixed])
    model_cid = lab.store.put(model)
    update_cids: dict[int, str] = {}
    for c in declared:
        data = c.update if stored_updates is None else stored_updates(c)
        cid = lab.store.put(data) if data is not None else _cid_without_storing(c.update)
        update_cids[c.hospital.dataset_id] = cid
    digest = committed_digest if committed_digest is not None else model_digest(model)
    manifest = RoundManifest.from_attestations(
        purpose=job.purpose,
        spec_digest=signed[0].attestation.spec_digest,
        parent_digest=signed[0].attestation.base_digest,
        model_digest=digest,
        model_cid=model_cid,
        signed_attestations=signed,
        update_cids=update_cids,
        metrics={"accuracy": 0.5},
    )
    if doctor is not None:
        manifest = doctor(manifest)
    manifest_cid = lab.store.put(raw_manifest if raw_manifest is not None else manifest.to_bytes())
    participants = (
        list(on_chain)
        if on_chain is not None
        else [c.hospital.dataset_id for c in declared if c.hospital.dataset_id in job.datasets]
    )
    receipt = lab.lab.commit_round(
        job.job_id,
        round_number,
        job.last_digest,
        digest,
        manifest_cid,
        job.datasets,
        participants,
        committed_root if committed_root is not None else manifest.attestations_root,
    )
    job.last_round, job.last_digest = round_number, digest
    return Forged(
        round_number, manifest, manifest_cid, model_cid, model, digest, update_cids, receipt, list(declared)
    )


def _cid_without_storing(data: bytes) -> str:
    from ledger.store import cid_of

    return str(cid_of(data))


def honest_round(lab: Lab, job: Job, hospitals: Sequence[Hospital] | None = None, seed: int = 0) -> Forged:
    """A round exactly as an honest coordinator commits it."""
    chosen = [
        h for h in (hospitals if hospitals is not None else lab.hospitals) if h.dataset_id in job.datasets
    ]
    return commit(lab, job, contributions(chosen, job.last_round + 1, seed))


def with_participant(manifest: RoundManifest, dataset_id: int, **changes: object) -> RoundManifest:
    """`manifest` with one participant's fields changed (the root is left as it was)."""
    participants = [
        p.model_copy(update=changes) if p.dataset_id == dataset_id else p for p in manifest.participants
    ]
    return manifest.model_copy(update={"participants": participants})


__all__ = [
    "AI",
    "SPEC",
    "Contribution",
    "Forged",
    "Hospital",
    "Job",
    "Lab",
    "commit",
    "contributions",
    "create_job",
    "enrol_hospital",
    "enrol_wallet_hospital",
    "honest_round",
    "replace",
    "sign",
    "weights",
    "with_participant",
]


def _wait_pending(lab: Lab, count: int, sending: Future[Any]) -> None:
    deadline = time.monotonic() + 30
    while int(lab.lab.transport.request("txpool_status", [])["pending"], 16) < count:
        if sending.done():
            sending.result()  # it failed before sending: raise why
        assert time.monotonic() < deadline, f"{count} transaction(s) never reached the pool"
        time.sleep(0.02)


def round_then_in_its_block(
    lab: Lab,
    job: Job,
    sender: LocalAccount,
    call: tuple[str, str, list[Any]],
    hospitals: Sequence[Hospital] | None = None,
) -> Forged:
    """An honest round of `hospitals` (default: the lab's), then `sender`'s `call` (contract,
    function, arguments), mined in the same block, after the commit.

    Mining stops (anvil's automine off) while both transactions wait in the pool; the call
    offers the least fee a block takes (its base fee, no tip), so anvil, which orders a block's
    transactions by fee, puts it after the commit. The contracts read at that block then say
    what the end of the block says, where the logs place the commit before the call: the
    chain's own order.
    """
    rpc = lab.lab.transport.request
    contract, function, args = call
    rpc("evm_setAutomine", [False])
    try:
        with ThreadPoolExecutor(1) as pool:
            committed = pool.submit(honest_round, lab, job, hospitals)
            _wait_pending(lab, 1, committed)
            base_fee = int(rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
            signed = sender.sign_transaction(
                {
                    "chainId": lab.lab.chain_id,
                    "nonce": int(rpc("eth_getTransactionCount", [sender.address, "pending"]), 16),
                    "to": lab.lab.deployment.address(contract),
                    "data": lab.lab.abis[contract].function(function, len(args)).encode_call(args),
                    "gas": 200_000,
                    "maxFeePerGas": base_fee,
                    "maxPriorityFeePerGas": 0,
                    "type": 2,
                }
            )
            sent = rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
            _wait_pending(lab, 2, committed)
            rpc("evm_mine", [])
            forged = committed.result(timeout=60)
    finally:
        rpc("evm_setAutomine", [True])
    receipt = rpc("eth_getTransactionReceipt", [sent])
    assert int(receipt["status"], 16) == 1
    assert int(receipt["blockNumber"], 16) == forged.receipt.block_number
    assert int(receipt["transactionIndex"], 16) == 1  # after the commit
    return forged


def round_then_revocation_in_its_block(
    lab: Lab, job: Job, hospital: Hospital, hospitals: Sequence[Hospital] | None = None
) -> Forged:
    """An honest round, then `hospital`'s revocation of the lab's grant in the same block: the
    contract read at that block says `revoked` where the logs say the grant was valid at the commit."""
    coordinator = lab.lab.address or ""
    call = ("UsageGrants", "revokeGrant", [hospital.dataset_id, coordinator, AI])
    forged = round_then_in_its_block(lab, job, hospital.account, call, hospitals)
    assert not lab.lab.is_authorized(hospital.dataset_id, coordinator, AI)
    return forged
