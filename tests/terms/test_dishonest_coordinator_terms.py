"""A dishonest coordinator cannot commit a round the participants' grant terms forbid.

Real anvil, real contracts, the real `LedgerClient`: three hospitals grant the lab with
terms (at least 3 participants per round, at most 2 rounds). The lab tries a round with
only two of them, and a third round; both are reverted by the contract (also when the lab
bypasses the client's pre-flight estimate and gets the transaction mined), with errors
naming the grant and the values, and the job is exactly as before.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_utils.crypto import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.types import GrantTerms
from ledger.errors import RoundLimitExceededError, TooFewParticipantsError
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from tests.conftest import DeployedChain

AI = PURPOSES["ai-training"]
TERMS = GrantTerms(epsilon=3, delta=1e-5, min_participants=3, max_rounds=2)
GENESIS = keccak(b"genesis")


def _model(round_number: int) -> bytes:
    return GENESIS if round_number == 0 else keccak(f"model-{round_number}".encode())


class Federation:
    """Hospitals dev1, dev3, dev4 each grant the lab (dev2) one dataset with TERMS; one job over all."""

    def __init__(self, chain: DeployedChain) -> None:
        self.chain = chain
        self.lab = chain[2]
        lab = str(self.lab.address)
        now = self.lab.latest_block().timestamp
        ids = []
        for index in (1, 3, 4):
            hospital = chain[index]
            dataset_id, _ = hospital.register_dataset(hashlib.sha256(f"hospital-{index}".encode()).digest())
            hospital.issue_grant(dataset_id, lab, AI, now, now + 86_400, TERMS)
            ids.append(dataset_id)
        self.datasets = sorted(ids)
        self.job_id, _ = self.lab.create_job(AI, self.datasets, GENESIS, keccak(b"spec"))

    def commit(self, round_number: int, participants: list[int]) -> Any:
        return self.lab.commit_round(
            self.job_id,
            round_number,
            _model(round_number - 1),
            _model(round_number),
            f"manifest-{round_number}",
            self.datasets,
            participants,
            keccak(f"attestations-{round_number}".encode()),
        )

    def state(self) -> tuple[Any, ...]:
        """The job, the chain height and the lab's transaction count."""
        client = self.lab
        return (
            client.get_job(self.job_id),
            client.latest_block().number,
            client.transport.request("eth_getTransactionCount", [client.address, "latest"]),
        )

    def mined_without_preflight(self, round_number: int, participants: list[int]) -> dict[str, Any]:
        """Send the commit as a signed raw transaction with fixed gas (no eth_estimateGas) and
        return its receipt: what a coordinator sees that skips the client's checks."""
        client: LedgerClient = self.lab
        position = {d: i for i, d in enumerate(self.datasets)}
        mask = sum(1 << position[p] for p in participants)
        data = (
            client.abis["TrainingLedger"]
            .function("commitRound", 8)
            .encode_call(
                [
                    self.job_id,
                    round_number,
                    _model(round_number - 1),
                    _model(round_number),
                    "forged",
                    self.datasets,
                    mask,
                    keccak(b"forged"),
                ]
            )
        )
        account = dev_account(2)
        nonce = int(client.transport.request("eth_getTransactionCount", [account.address, "latest"]), 16)
        tx = {
            "to": client.deployment.address("TrainingLedger"),
            "data": data,
            "gas": 500_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
            "nonce": nonce,
            "chainId": client.chain_id,
            "value": 0,
            "type": 2,
        }
        raw = account.sign_transaction(tx).raw_transaction
        tx_hash = client.transport.request("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
        receipt: dict[str, Any] | None = None
        while receipt is None:
            receipt = client.transport.request("eth_getTransactionReceipt", [tx_hash])
        return receipt


@pytest.fixture()
def federation(deployed: DeployedChain) -> Federation:
    return Federation(deployed)


def test_round_with_fewer_participants_than_the_terms_is_reverted(federation: Federation) -> None:
    lab = federation.lab
    assert lab.get_grant(federation.datasets[0], str(lab.address), AI).terms == TERMS
    before = federation.state()
    two = federation.datasets[:2]
    with pytest.raises(TooFewParticipantsError) as caught:
        federation.commit(1, two)
    message = str(caught.value)
    assert (
        f"the grant of dataset 0x{two[0]:064x} to {lab.address} for ai-training requires at least 3 "
        "participants per round; this round has 2" in message
    ), message
    assert "UsageGrantsTooFewParticipants" in message
    assert federation.state() == before

    # Skipping the client's estimate does not help: the transaction is mined and reverts.
    receipt = federation.mined_without_preflight(1, two)
    assert receipt["status"] == "0x0"
    job, height, _ = federation.state()
    assert job == before[0] and height == before[1] + 1

    # With all three hospitals the round is what the terms allow.
    federation.commit(1, federation.datasets)
    assert lab.get_job(federation.job_id).last_round == 1


def test_round_past_max_rounds_is_reverted(federation: Federation) -> None:
    lab = federation.lab
    federation.commit(1, federation.datasets)
    federation.commit(2, federation.datasets)
    before = federation.state()
    with pytest.raises(RoundLimitExceededError) as caught:
        federation.commit(3, federation.datasets)
    message = str(caught.value)
    expected = f"to {lab.address} for ai-training allows rounds 1 to 2 of a job; this is round 3"
    assert expected in message, message
    assert federation.state() == before
    receipt = federation.mined_without_preflight(3, federation.datasets)
    assert receipt["status"] == "0x0"
    assert lab.get_job(federation.job_id) == before[0]


def test_only_the_participants_terms_count(deployed: DeployedChain) -> None:
    """A hospital without terms is not bound by another's: a round without the strict one commits."""
    lab = deployed[2]
    labaddr = str(lab.address)
    now = lab.latest_block().timestamp
    strict, _ = deployed[1].register_dataset(hashlib.sha256(b"strict").digest())
    deployed[1].issue_grant(strict, labaddr, AI, now, now + 86_400, GrantTerms(min_participants=3))
    loose = []
    for index in (3, 4):
        dataset_id, _ = deployed[index].register_dataset(hashlib.sha256(f"loose-{index}".encode()).digest())
        deployed[index].issue_grant(dataset_id, labaddr, AI, now, now + 86_400)
        loose.append(dataset_id)
    datasets = sorted([strict, *loose])
    job_id, _ = lab.create_job(AI, datasets, GENESIS, keccak(b"spec"))
    lab.commit_round(job_id, 1, GENESIS, _model(1), "m1", datasets, loose, keccak(b"a"))
    too_few = "requires at least 3 participants per round; this round has 2"
    with pytest.raises(TooFewParticipantsError, match=too_few):
        lab.commit_round(job_id, 2, _model(1), _model(2), "m2", datasets, [strict, loose[0]], keccak(b"b"))
    assert lab.get_job(job_id).last_round == 1
