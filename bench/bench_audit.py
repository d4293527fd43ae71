"""Audit speed: a 200-round job with 10 nodes, every hash, signature and aggregate checked.

The job is synthetic but real on every point the audit checks: 10 datasets registered by
10 owners who grant the lab, a job on chain, 200 committed rounds, each with 10 update files,
the model `aggregate_updates` makes of them, a canonical v2 manifest in a local content store
and 10 EIP-712 attestations signed by the owners' keys. No training: the bench measures the
audit, not learning.

Reported: `audit_seconds_200_rounds` (chain logs + content store + FedAvg recomputed for every
round + every historical contract read at each round's block),
`audit_seconds_200_rounds_no_historical_calls` (the same without the historical reads; its
verdict is NOT VERIFIED by design), `index_sync_seconds` (first sync of a fresh index) and
`setup_seconds`.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.aggregation import aggregate_updates
from ledger.audit import audit
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.index import EventIndex
from ledger.keys import dev_account
from ledger.modelfile import model_to_bytes
from ledger.provenance import Attestation, RoundManifest, model_digest, sign_attestation
from ledger.purposes import purpose_id
from ledger.store import LocalBlockstore

ROUNDS = 200
NODES = 10
MODEL_PARAMS = 4 * 1024  # 16 KiB of float32 per model file
REPEATS = 3


def _owners(client: LedgerClient) -> list[LocalAccount]:
    owners = []
    for index in range(NODES):
        account: LocalAccount = Account.from_key(
            hashlib.sha256(f"bench-audit-owner-{index}".encode()).digest()
        )
        client.transport.request("anvil_setBalance", [account.address, hex(10**21)])
        owners.append(account)
    return owners


def build_job(client: LedgerClient, store: LocalBlockstore) -> int:
    """Registers, grants, creates the job and commits `ROUNDS` signed rounds; returns the job id."""
    assert client.address is not None
    purpose = purpose_id("ai-training")
    now = client.latest_block().timestamp
    datasets = []
    owners = _owners(client)
    for index, owner in enumerate(owners):
        hospital = client.with_account(owner)
        dataset_id, _ = hospital.register_dataset(
            hashlib.sha256(f"bench-audit-dataset-{index}".encode()).digest()
        )
        hospital.issue_grant(dataset_id, client.address, purpose, now, now + 30 * 24 * 3600)
        datasets.append((dataset_id, owner))
    datasets.sort(key=lambda pair: pair[0])
    ids = [d for d, _ in datasets]
    spec_digest = hashlib.sha256(b"bench-audit-spec").digest()
    initial = _model_file(-1)
    store.put(initial)
    job_id, _ = client.create_job(purpose, ids, model_digest(initial), spec_digest)
    ledger = client.deployment.address("TrainingLedger")
    parent = model_digest(initial)
    counts = [50 + i for i in range(NODES)]
    for round_number in range(1, ROUNDS + 1):
        updates = [_model_file(round_number * NODES + i) for i in range(NODES)]
        model = aggregate_updates(updates, counts)
        digest = model_digest(model)
        signed = [
            sign_attestation(
                owner,  # type: ignore[arg-type]  # eth-account types the hash as Hash32, a NewType of bytes
                client.chain_id,
                ledger,
                Attestation(
                    job_id, round_number, dataset_id, parent, spec_digest, model_digest(update), count
                ),
            )
            for (dataset_id, owner), update, count in zip(datasets, updates, counts, strict=True)
        ]
        manifest = RoundManifest.from_attestations(
            purpose=purpose,
            spec_digest=spec_digest,
            parent_digest=parent,
            model_digest=digest,
            model_cid=store.put(model),
            signed_attestations=signed,
            update_cids={d: store.put(u) for (d, _), u in zip(datasets, updates, strict=True)},
            metrics={"accuracy": 0.5},
        )
        manifest_cid = store.put(manifest.to_bytes())
        client.commit_round(
            job_id, round_number, parent, digest, manifest_cid, ids, ids, manifest.attestations_root
        )
        parent = digest
    return job_id


def _model_file(seed: int) -> bytes:
    """A canonical model file of `MODEL_PARAMS` float32 values that depend on `seed`."""
    generator = torch.Generator().manual_seed(seed + 1)
    return model_to_bytes({"layer.weight": torch.randn(MODEL_PARAMS, generator=generator)})


def run() -> dict[str, Any]:
    """Builds the job on a fresh anvil, then times the audit (median of `REPEATS`)."""
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp, start_anvil() as node:
        transport = Transport(make_provider(node.rpc_url), node.rpc_url)
        deployment = deploy_contracts(transport, dev_account(0))
        client = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        store = LocalBlockstore(Path(tmp) / "blocks")
        started = time.perf_counter()
        job_id = build_job(client, store)
        setup = time.perf_counter() - started
        index = EventIndex(Path(tmp) / "index.sqlite", client)
        started = time.perf_counter()
        index.sync()
        sync_seconds = time.perf_counter() - started
        full, without_history = [], []
        checks = 0
        for _ in range(REPEATS):
            started = time.perf_counter()
            report = audit(str(job_id), client=client, index=index, store=store)
            full.append(time.perf_counter() - started)
            if not report.ok:
                raise RuntimeError(f"bench job does not verify: {report.summary()}")
            checks = len(report.checks)
            started = time.perf_counter()
            light = audit(str(job_id), client=client, index=index, store=store, chain_checks=False)
            without_history.append(time.perf_counter() - started)
            if light.failures:
                raise RuntimeError(f"bench job fails without historical calls: {light.summary()}")
        index.close()
        return {
            "audit_seconds_200_rounds": round(statistics.median(full), 3),
            "audit_seconds_200_rounds_no_historical_calls": round(statistics.median(without_history), 3),
            "audit_checks_200_rounds": checks,
            "audit_signatures_200_rounds": ROUNDS * NODES,
            "index_sync_seconds_200_rounds": round(sync_seconds, 3),
            "audit_setup_seconds": round(setup, 2),
        }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
