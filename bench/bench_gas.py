"""Transaction gas (21k base included) of the operations people pay for, on a fresh anvil.

The same numbers are pinned in contracts/gas-snapshot.json by the test suite; this
benchmark measures them again through the Python facade, as a user's transactions.

Large rounds (open jobs, `commit_round_1000` and `commit_round_10000`) are measured on their
own anvil: a `BulkDatasetOwner` contract registers and grants the datasets in a few dozen
transactions, then round 2 of an open job is committed through `LedgerClient` (begin, one
transaction per batch of `ledger.participants.DEFAULT_BATCH`, finalize); the figure is the
sum of those transactions' gas, and `_per_participant` divides it by the participant count.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.keys import dev_account
from ledger.participants import DEFAULT_BATCH, batches, participants_hash
from ledger.purposes import purpose_id
from ledger.signed_grants import grant_typed_data, sign_grant

AI_TRAINING = purpose_id("ai-training")
MANIFEST_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
LARGE_ROUNDS = (1_000, 10_000)
# Datasets registered and granted per BulkDatasetOwner transaction (~150k gas each, under a block).
_SETUP_CHUNK = 150


def _root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def run() -> dict[str, Any]:
    """Gas of register, grant, grant by signature, revoke, commitRound with 1, 10, 100 participants,
    and large rounds of 1,000 and 10,000 participants (total gas and gas per participant)."""
    node = start_anvil()
    try:
        deployment = deploy_contracts(Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0))
        lab = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        owner = lab.with_account(dev_account(1))
        signer = lab.with_account(dev_account(2))
        now = lab.latest_block().timestamp
        gas: dict[str, int] = {}

        dataset_id, receipt = owner.register_dataset(_root("gas/register"))
        gas["register"] = receipt.gas_used
        gas["grant"] = owner.issue_grant(dataset_id, lab.address, AI_TRAINING, now, now + 86400).gas_used  # type: ignore[arg-type]
        gas["revoke"] = owner.revoke_grant(dataset_id, lab.address, AI_TRAINING).gas_used  # type: ignore[arg-type]

        signed_id, _ = signer.register_dataset(_root("gas/signed"))
        typed = grant_typed_data(
            lab.chain_id,
            deployment.address("UsageGrants"),
            signed_id,
            lab.address,  # type: ignore[arg-type]
            AI_TRAINING,
            now,
            now + 86400,
            signer.nonces(signer.address),
            now + 3600,  # type: ignore[arg-type]
        )
        gas["grant_by_signature"] = lab.issue_grant_by_sig(sign_grant(dev_account(2), typed)).gas_used

        for participants in (1, 10, 100):
            ids = []
            for i in range(participants):
                did, _ = owner.register_dataset(_root(f"gas/job{participants}/{i}"))
                owner.issue_grant(did, lab.address, AI_TRAINING, now, now + 86400)  # type: ignore[arg-type]
                ids.append(did)
            ids.sort()
            initial = _root(f"gas/model{participants}/0")
            job_id, _ = lab.create_job(AI_TRAINING, ids, initial, _root("spec"))
            parent = initial
            for round_number in (1, 2):  # the first commit writes fresh slots; measure the second
                digest = _root(f"gas/model{participants}/{round_number}")
                receipt = lab.commit_round(
                    job_id,
                    round_number,
                    parent,
                    digest,
                    MANIFEST_CID,
                    ids,
                    ids,
                    _root(f"gas/att{participants}/{round_number}"),
                )
                parent = digest
            gas[f"commit_round_{participants}"] = receipt.gas_used
    finally:
        node.stop()
    large = large_round_gas(LARGE_ROUNDS)
    gas.update(large["gas"])
    per = large["gas_per_participant"]
    return {
        "gas": gas,
        "gas_per_participant": per,
        "large_round_seconds": large["timing"],
        **{f"large_round_gas_per_participant_{n}": per[f"commit_round_{n}"] for n in LARGE_ROUNDS},
    }


def large_round_gas(sizes: tuple[int, ...]) -> dict[str, Any]:
    """Gas of round 2 of an open job with each number of participants, on a fresh anvil."""
    node = start_anvil()
    try:
        deployment = deploy_contracts(Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0))
        lab = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        artifact = load_artifact("BulkDatasetOwner")
        sender = lab._sender
        assert sender is not None
        constructor = encode(
            ["address", "address"], [deployment.address("DatasetRegistry"), deployment.address("UsageGrants")]
        ).hex()
        bulk = sender.transact(None, artifact.bytecode + constructor, "deploy bulk owner")["contractAddress"]
        selector = keccak(text="registerAndGrant(bytes32,uint256,uint256,address,bytes32,uint64)")[:4]
        expires = lab.latest_block().timestamp + 30 * 86400
        gas: dict[str, int] = {}
        per: dict[str, float] = {}
        timing: dict[str, float] = {}
        for size in sizes:
            seed = _root(f"gas/large/{size}")
            clock = time.perf_counter()
            for first in range(0, size, _SETUP_CHUNK):
                count = min(_SETUP_CHUNK, size - first)
                call = selector + encode(
                    ["bytes32", "uint256", "uint256", "address", "bytes32", "uint64"],
                    [seed, first, count, lab.address, AI_TRAINING, expires],
                )
                sender.transact(bulk, "0x" + call.hex(), "register and grant")
            ids = sorted(
                int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, i])), "big") for i in range(size)
            )
            timing[f"setup_s_{size}"] = round(time.perf_counter() - clock, 2)
            initial = _root(f"gas/large/{size}/model/0")
            job_id, _ = lab.create_open_job(AI_TRAINING, initial, _root("spec"))
            parent = initial
            clock = time.perf_counter()
            for round_number in (1, 2):  # as for the bitmask rounds: measure the second
                digest = _root(f"gas/large/{size}/model/{round_number}")
                used = lab.begin_large_round(job_id, round_number, parent).gas_used
                for batch in batches(ids, DEFAULT_BATCH):
                    used += lab.add_round_participants(job_id, round_number, batch).gas_used
                used += lab.finalize_large_round(
                    job_id,
                    round_number,
                    digest,
                    MANIFEST_CID,
                    len(ids),
                    participants_hash(ids),
                    _root(f"gas/large/att/{round_number}"),
                ).gas_used
                parent = digest
            timing[f"commit_s_{size}"] = round((time.perf_counter() - clock) / 2, 2)
            gas[f"commit_round_{size}"] = used
            per[f"commit_round_{size}"] = round(used / size, 1)
        return {"gas": gas, "gas_per_participant": per, "timing": timing}
    finally:
        node.stop()
