"""Every `LedgerClient` method against a real node, on anvil and on hardhat node."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.types import AuthorizationStatus
from ledger.errors import (
    GrantExpiredError,
    GrantOwnerChangedError,
    GrantRevokedError,
    InvalidArgumentError,
    NotOwnerOrOperatorError,
)
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from tests.conftest import DeployedChain
from tests.ledger.conftest import advance_time, rpc

AI = PURPOSES["ai-training"]
ZERO = "0x0000000000000000000000000000000000000000"

pytestmark = pytest.mark.hardhat


def test_register_dataset_records_owner_uri_and_parent(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    owner = any_chain[1]
    root = new_root()
    dataset_id, receipt = owner.register_dataset(root, uri="ipfs://bafy-desc")
    assert dataset_id == int.from_bytes(root, "big")
    event = receipt.event("DatasetRegistered")
    assert event.args == {
        "datasetId": dataset_id,
        "owner": owner.address,
        "parentId": 0,
        "uri": "ipfs://bafy-desc",
    }
    assert receipt.block_number == owner.latest_block().number
    assert owner.dataset_state(dataset_id).owner == owner.address
    assert owner.dataset_state(dataset_id).epoch == 0
    assert not owner.dataset_state(dataset_id).retired

    child_id, child_receipt = owner.register_dataset(new_root(), parent_id=dataset_id)
    assert child_receipt.event("DatasetRegistered").args["parentId"] == dataset_id
    assert owner.dataset_state(child_id).registered


def test_unknown_dataset_reads_as_unregistered(any_chain: DeployedChain) -> None:
    state = any_chain[0].dataset_state(12345)
    assert not state.registered and state.owner == ZERO
    assert (
        any_chain[0].authorization_status(12345, str(any_chain[1].address), AI)
        is AuthorizationStatus.UNKNOWN_DATASET
    )


def test_grant_lifecycle_issue_check_revoke(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, lab = any_chain[1], any_chain[2]
    assert lab.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    assert owner.authorization_status(dataset_id, lab.address, "ai-training") is AuthorizationStatus.NO_GRANT

    receipt = owner.issue_grant(dataset_id, lab.address, "ai-training", now, now + 3600)
    assert receipt.event("GrantIssued").args == {
        "datasetId": dataset_id,
        "grantee": lab.address,
        "purpose": AI,
        "notBefore": now,
        "expiresAt": now + 3600,
        "epsilonHundredths": 0,
        "deltaNegExponent": 0,
        "minParticipants": 0,
        "maxRounds": 0,
    }
    assert owner.is_authorized(dataset_id, lab.address, AI)
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.AUTHORIZED
    grant = owner.get_grant(dataset_id, lab.address, AI)
    assert (grant.not_before, grant.expires_at, grant.epoch, grant.revoked) == (now, now + 3600, 0, False)
    # Another purpose is not covered by this grant.
    assert not owner.is_authorized(dataset_id, lab.address, "analytics")
    lab.require_authorized([dataset_id], lab.address, AI)

    revoked = owner.revoke_grant(dataset_id, lab.address, AI)
    assert revoked.event("GrantRevoked").args == {
        "datasetId": dataset_id,
        "grantee": lab.address,
        "purpose": AI,
    }
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.REVOKED
    with pytest.raises(GrantRevokedError, match="was revoked"):
        lab.require_authorized([dataset_id], lab.address, AI)
    # Reads at an earlier block see the grant as it was then.
    assert owner.is_authorized(dataset_id, lab.address, AI, block=receipt.block_number)


def test_grant_not_yet_valid_then_valid_then_expired(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    owner, lab = any_chain[1], any_chain[2]
    assert lab.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    owner.issue_grant(dataset_id, lab.address, AI, now + 100, now + 200)
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.NOT_YET_VALID
    advance_time(any_chain, 150)
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.AUTHORIZED
    advance_time(any_chain, 100)
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.EXPIRED
    with pytest.raises(GrantExpiredError, match=r"expired at .*UTC") as caught:
        lab.require_authorized([dataset_id], lab.address, AI)
    assert isinstance(caught.value, PermissionError)
    assert caught.value.error_name == "UsageGrantsExpired"
    assert caught.value.args_by_name["expiresAt"] == now + 200


def test_renounce_grant_by_grantee(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, lab = any_chain[1], any_chain[2]
    assert lab.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    owner.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    receipt = lab.renounce_grant(dataset_id, "ai-training")
    assert receipt.event("GrantRevoked").args["grantee"] == lab.address
    assert owner.get_grant(dataset_id, lab.address, AI).revoked


def test_retire_dataset_stops_every_grant(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, lab = any_chain[1], any_chain[2]
    assert lab.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    owner.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    receipt = owner.retire_dataset(dataset_id)
    assert receipt.event("DatasetRetired").args == {"datasetId": dataset_id}
    assert owner.dataset_state(dataset_id).retired
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.DATASET_RETIRED


def test_transfer_dataset_bumps_epoch_and_voids_grants(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    owner, lab, buyer = any_chain[1], any_chain[2], any_chain[3]
    assert lab.address is not None and buyer.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    owner.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    receipt = owner.transfer_dataset(dataset_id, buyer.address)
    assert receipt.event("Transfer").args == {
        "from": owner.address,
        "to": buyer.address,
        "tokenId": dataset_id,
    }
    state = owner.dataset_state(dataset_id)
    assert (state.owner, state.epoch) == (buyer.address, 1)
    assert owner.authorization_status(dataset_id, lab.address, AI) is AuthorizationStatus.OWNER_CHANGED
    with pytest.raises(GrantOwnerChangedError, match="earlier owner"):
        lab.require_authorized([dataset_id], lab.address, AI)
    # The new owner grants again; the old owner no longer can.
    buyer.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    assert owner.is_authorized(dataset_id, lab.address, AI)
    with pytest.raises(NotOwnerOrOperatorError):
        owner.revoke_grant(dataset_id, lab.address, AI)
    assert owner.is_authorized(dataset_id, lab.address, AI)


def test_operator_grants_for_owner(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, operator, lab = any_chain[1], any_chain[4], any_chain[2]
    assert operator.address is not None and lab.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    with pytest.raises(NotOwnerOrOperatorError, match=f"caller is {operator.address}"):
        operator.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    assert owner.get_grant(dataset_id, lab.address, AI).expires_at == 0
    receipt = owner.set_operator(operator.address, True)
    assert receipt.event("ApprovalForAll").args["approved"] is True
    operator.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    assert owner.is_authorized(dataset_id, lab.address, AI)
    owner.set_operator(operator.address, False)
    with pytest.raises(NotOwnerOrOperatorError):
        operator.revoke_grant(dataset_id, lab.address, AI)
    assert owner.is_authorized(dataset_id, lab.address, AI)


def test_jobs_and_rounds(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, lab = any_chain[1], any_chain[2]
    assert lab.address is not None
    datasets = sorted(owner.register_dataset(new_root())[0] for _ in range(3))
    now = owner.latest_block().timestamp
    for dataset_id in datasets:
        owner.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    assert lab.job_count() == 0
    initial, spec = keccak(b"model-0"), keccak(b"spec")
    job_id, receipt = lab.create_job("ai-training", datasets, initial, spec)
    assert job_id == 1 and lab.job_count() == 1
    created = receipt.event("JobCreated").args
    assert created["coordinator"] == lab.address and created["datasets"] == datasets
    job = lab.get_job(job_id)
    assert (job.coordinator, job.last_round, job.purpose, job.last_digest) == (lab.address, 0, AI, initial)

    model_1 = keccak(b"model-1")
    committed = lab.commit_round(
        job_id, 1, initial, model_1, "bafy-manifest-1", datasets, [datasets[2], datasets[0]], keccak(b"att-1")
    )
    args = committed.event("RoundCommitted").args
    assert args["round"] == 1 and args["modelDigest"] == model_1 and args["manifestCid"] == "bafy-manifest-1"
    assert args["participants"] == [datasets[0], datasets[2]]
    assert lab.get_job(job_id).last_round == 1 and lab.get_job(job_id).last_digest == model_1

    with pytest.raises(InvalidArgumentError, match="not one of job 1's 3 datasets"):
        lab.commit_round(job_id, 2, model_1, keccak(b"m2"), "cid", datasets, [12345], keccak(b"a"))
    assert lab.get_job(job_id).last_round == 1


def test_latest_block_and_logs(any_chain: DeployedChain, new_root: Callable[[], bytes]) -> None:
    client = any_chain[0]
    before = client.latest_block()
    _, receipt = client.register_dataset(new_root(), uri="u")
    after = client.latest_block()
    assert after.number == receipt.block_number > before.number
    assert after.hash == receipt.block_hash and after.timestamp >= before.timestamp
    events = client.get_logs(any_chain.deployment.deployed_block)
    assert [e.name for e in events if e.tx_hash == receipt.tx_hash] == ["Transfer", "DatasetRegistered"]
    assert any_chain.deployment.deployed_block <= before.number


def test_fifty_concurrent_grants_from_one_account(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    owner = any_chain[1]
    assert owner.address is not None
    dataset_id, _ = owner.register_dataset(new_root())
    now = owner.latest_block().timestamp
    nonce_before = int(rpc(any_chain, "eth_getTransactionCount", [owner.address, "latest"]), 16)
    # 50 distinct grantees: every thread writes its own grant key.
    grantees = [to_checksum_address(keccak(text=f"grantee-{i}")[:20]) for i in range(50)]
    purposes = list(PURPOSES.values())
    receipts: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def grant(i: int) -> None:
        try:
            # 50 distinct keys: (grantee, purpose) pairs, each with its own expiry.
            r = owner.issue_grant(dataset_id, grantees[i], purposes[i % 4], now, now + 10_000 + i)
            with lock:
                receipts.append(r)
        except BaseException as error:  # collected and asserted below
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=grant, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(receipts) == 50
    nonce_after = int(rpc(any_chain, "eth_getTransactionCount", [owner.address, "latest"]), 16)
    assert nonce_after == nonce_before + 50
    nonces = sorted(
        int(rpc(any_chain, "eth_getTransactionByHash", [r.tx_hash])["nonce"], 16)  # type: ignore[attr-defined]
        for r in receipts
    )
    assert nonces == list(range(nonce_before, nonce_before + 50))
    for i in range(50):
        assert owner.get_grant(dataset_id, grantees[i], purposes[i % 4]).expires_at == now + 10_000 + i
        assert owner.is_authorized(dataset_id, grantees[i], purposes[i % 4])


def test_nonce_resync_after_another_sender_used_the_account(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    owner = any_chain[1]
    assert owner.address is not None
    owner.register_dataset(new_root())  # the client now has a local nonce counter
    # Another program sends from the same key behind the client's back.
    raw_nonce = int(rpc(any_chain, "eth_getTransactionCount", [owner.address, "pending"]), 16)
    signed = dev_account(1).sign_transaction(
        {
            "type": 2,
            "chainId": any_chain[0].chain_id,
            "nonce": raw_nonce,
            "to": dev_account(5).address,
            "value": 1,
            "gas": 21000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    tx_hash = rpc(any_chain, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    owner._sender.wait(tx_hash)  # type: ignore[union-attr]
    dataset_id, receipt = owner.register_dataset(new_root())
    assert owner.dataset_state(dataset_id).owner == owner.address
    tx = rpc(any_chain, "eth_getTransactionByHash", [receipt.tx_hash])
    assert int(tx["nonce"], 16) == raw_nonce + 1
