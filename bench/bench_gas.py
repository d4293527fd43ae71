"""Transaction gas (21k base included) of the operations people pay for, on a fresh anvil.

The same numbers are pinned in contracts/gas-snapshot.json by the test suite; this
benchmark measures them again through the Python facade, as a user's transactions.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.keys import dev_account
from ledger.purposes import purpose_id
from ledger.signed_grants import grant_typed_data, sign_grant

AI_TRAINING = purpose_id("ai-training")
MANIFEST_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def run() -> dict[str, Any]:
    """Gas of register, grant, grant by signature, revoke and commitRound with 1, 10, 100 participants."""
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
        return {"gas": gas}
    finally:
        node.stop()
