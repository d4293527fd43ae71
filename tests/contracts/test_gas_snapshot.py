"""Gas snapshot of the user-facing transactions, with the issue's targets.

Transaction gas (receipt `gasUsed`, the 21k base included) is measured on a fresh anvil.
`UPDATE_GAS_SNAPSHOT=1` rewrites contracts/gas-snapshot.json; otherwise any drift from the
committed numbers fails, so a change in cost shows up in review.
"""

from __future__ import annotations

import json
import os

from eth_abi.abi import encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.participants import DEFAULT_BATCH, batches, participants_hash
from tests.contracts.devchain import REPO, Chain, Deployed, content_roots, deploy_all

SNAPSHOT = REPO / "contracts" / "gas-snapshot.json"
AI_TRAINING = Web3.keccak(text="ai-training")
# Fixed far-future times: calldata gas depends on the bytes, so they must not vary per run.
EXPIRES_AT = 4_102_444_800  # 2100-01-01
DEADLINE = 4_102_444_800
# Grant terms as the chain encodes them: epsilon 3.00, delta 1e-5, >= 1 participant, 50 rounds
# (min 1 so every measured round passes the check; the check runs whatever the values).
TERMS = (300, 5, 1, 50)


def target(name: str) -> int:
    """The issue's ceiling for each measured transaction."""
    fixed = {
        "register": 100_000,
        "grant": 70_000,
        "grant_with_terms": 70_000,
        "grant_by_signature": 100_000,
        "revoke": 40_000,
        # No target in the issue: a first write of the owner's nonce slot plus the event.
        "cancel_signatures": 50_000,
    }
    if name in fixed:
        return fixed[name]
    participants = int(name.rsplit("_", 1)[1])
    # Large rounds: the issue's 7k per participant, every transaction of the round included.
    return 60_000 + 7_000 * participants


def measure(chain: Chain) -> dict[str, int]:
    """Run each measured transaction once, in a fresh deployment, and collect gasUsed."""
    deployer, owner, coordinator, relayer, other_owner = chain.accounts[:5]
    c = deploy_all(chain, deployer)
    gas: dict[str, int] = {}

    root = content_roots(1, b"single")[0]
    gas["register"] = chain.send(owner, c.registry.functions.register(root, 0, "ipfs://dataset"))["gasUsed"]
    dataset_id = int.from_bytes(root, "big")

    issue = c.grants.functions.issueGrant(dataset_id, coordinator.address, AI_TRAINING, 0, EXPIRES_AT)
    gas["grant"] = chain.send(owner, issue)["gasUsed"]
    revoke = c.grants.functions.revokeGrant(dataset_id, coordinator.address, AI_TRAINING)
    gas["revoke"] = chain.send(owner, revoke)["gasUsed"]
    # The same first grant of another key, with terms (a fresh slot like "grant").
    termed_root = content_roots(1, b"termed")[0]
    chain.send(owner, c.registry.functions.register(termed_root, 0, ""))
    termed = c.grants.functions.issueGrant(
        int.from_bytes(termed_root, "big"), coordinator.address, AI_TRAINING, 0, EXPIRES_AT, TERMS
    )
    gas["grant_with_terms"] = chain.send(owner, termed)["gasUsed"]

    # An owner's first signed grant (nonce 0 -> 1), submitted by someone else.
    signed_root = content_roots(1, b"signed")[0]
    chain.send(other_owner, c.registry.functions.register(signed_root, 0, ""))
    signed_id = int.from_bytes(signed_root, "big")
    message = {
        "datasetId": signed_id,
        "grantee": coordinator.address,
        "purpose": AI_TRAINING,
        "notBefore": 0,
        "expiresAt": EXPIRES_AT,
        "epsilonHundredths": TERMS[0],
        "deltaNegExponent": TERMS[1],
        "minParticipants": TERMS[2],
        "maxRounds": TERMS[3],
        "nonce": 0,
        "deadline": DEADLINE,
    }
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Grant": [
                {"name": "datasetId", "type": "uint256"},
                {"name": "grantee", "type": "address"},
                {"name": "purpose", "type": "bytes32"},
                {"name": "notBefore", "type": "uint64"},
                {"name": "expiresAt", "type": "uint64"},
                {"name": "epsilonHundredths", "type": "uint16"},
                {"name": "deltaNegExponent", "type": "uint8"},
                {"name": "minParticipants", "type": "uint8"},
                {"name": "maxRounds", "type": "uint16"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Grant",
        "domain": {
            "name": "UsageGrants",
            "version": "2",
            "chainId": chain.w3.eth.chain_id,
            "verifyingContract": c.grants.address,
        },
        "message": message,
    }
    signature = other_owner.sign_message(encode_typed_data(full_message=typed)).signature
    by_sig = c.grants.functions.issueGrantBySig(
        signed_id, coordinator.address, AI_TRAINING, 0, EXPIRES_AT, TERMS, 0, DEADLINE, bytes(signature)
    )
    gas["grant_by_signature"] = chain.send(relayer, by_sig)["gasUsed"]
    assert c.grants.functions.isAuthorized(signed_id, coordinator.address, AI_TRAINING).call()

    # An owner who never signed cancels its first ten nonces (0 -> 10: a fresh slot).
    gas["cancel_signatures"] = chain.send(owner, c.grants.functions.invalidateNonces(9))["gasUsed"]
    assert c.grants.functions.nonces(owner.address).call() == 10

    for n in (1, 10, 100):
        roots = content_roots(n, f"job{n}".encode())
        ids = [int.from_bytes(r, "big") for r in roots]
        for r, i in zip(roots, ids, strict=True):
            chain.send(owner, c.registry.functions.register(r, 0, ""))
            # With terms, so every round pays the terms check it makes per participant.
            chain.send(
                owner,
                c.grants.functions.issueGrant(i, coordinator.address, AI_TRAINING, 0, EXPIRES_AT, TERMS),
            )
        job_id = c.ledger.functions.jobCount().call() + 1
        genesis = Web3.keccak(text=f"genesis{n}")
        chain.send(
            coordinator, c.ledger.functions.createJob(AI_TRAINING, ids, genesis, Web3.keccak(text="spec"))
        )
        mask = (1 << n) - 1
        cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        parent = genesis
        for rnd in (1, 2):
            digest = Web3.keccak(text=f"model{n}-{rnd}")
            commit = c.ledger.functions.commitRound(
                job_id, rnd, parent, digest, cid, ids, mask, Web3.keccak(text=f"att{rnd}")
            )
            used = chain.send(coordinator, commit)["gasUsed"]
            parent = digest
        # Round 2: a round after the first, which is what every later round costs.
        gas[f"commit_round_{n}"] = used
    gas["commit_large_round_1000"] = _large_round(chain, c, owner, coordinator, 1000)
    return gas


def _large_round(chain: Chain, c: Deployed, owner: LocalAccount, coordinator: LocalAccount, n: int) -> int:
    """Gas of round 2 of an open job with `n` participants: begin + batches of 500 + finalize."""
    bulk = chain.deploy(owner, "BulkDatasetOwner", c.registry.address, c.grants.address)
    seed = Web3.keccak(text=f"large{n}")
    for first in range(0, n, 25):  # 25 registrations and grants fit the fixed 5M gas limit
        chain.send(
            owner,
            bulk.functions.registerAndGrant(seed, first, 25, coordinator.address, AI_TRAINING, EXPIRES_AT),
        )
    ids = sorted(
        int.from_bytes(Web3.keccak(encode(["bytes32", "uint256"], [seed, i])), "big") for i in range(n)
    )
    genesis = Web3.keccak(text=f"genesis-large{n}")
    chain.send(coordinator, c.ledger.functions.createOpenJob(AI_TRAINING, genesis, Web3.keccak(text="spec")))
    job_id = c.ledger.functions.jobCount().call()
    parent = genesis
    for rnd in (1, 2):
        digest = Web3.keccak(text=f"large-model{n}-{rnd}")
        used = chain.send(coordinator, c.ledger.functions.beginLargeRound(job_id, rnd, parent))["gasUsed"]
        for batch in batches(ids, DEFAULT_BATCH):
            used += chain.send(coordinator, c.ledger.functions.addRoundParticipants(job_id, rnd, batch))[
                "gasUsed"
            ]
        finalize = c.ledger.functions.finalizeLargeRound(
            job_id,
            rnd,
            digest,
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            n,
            participants_hash(ids),
            Web3.keccak(text=f"att{rnd}"),
        )
        used += chain.send(coordinator, finalize)["gasUsed"]
        parent = digest
    return int(used)


def test_gas_snapshot(chain: Chain) -> None:
    """Gas stays within the targets and equal to the committed snapshot."""
    gas = measure(chain)
    over = {k: (v, target(k)) for k, v in gas.items() if v > target(k)}
    assert not over, f"gas over target (used, target): {over}"
    if os.environ.get("UPDATE_GAS_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(gas, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    drift = {k: {"old": recorded.get(k), "new": v} for k, v in gas.items() if recorded.get(k) != v}
    drift.update({k: {"old": v, "new": None} for k, v in recorded.items() if k not in gas})
    assert not drift, f"gas drift; rerun with UPDATE_GAS_SNAPSHOT=1 if intended: {drift}"
