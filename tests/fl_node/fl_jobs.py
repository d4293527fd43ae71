"""Helpers for the ledger-gated learning tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from fl_node.coordinator import JobState
from fl_node.runner import EmbeddedRunner, Enrollment, Federation, TrainConfig
from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.store.local import LocalBlockstore

CONFIG = TrainConfig(data="breast_cancer", nodes=3, rounds=2, partition="iid", seed=7)


@dataclass
class Job:
    """An enrolled federation with a created job, ready to run rounds."""

    federation: Federation
    enrollment: Enrollment
    runner: EmbeddedRunner
    job: JobState
    store: LocalBlockstore

    @property
    def lab(self) -> LedgerClient:
        return self.enrollment.lab

    def owner(self, index: int) -> LedgerClient:
        return self.enrollment.owners[index]

    def dataset(self, index: int) -> int:
        return self.federation.dataset_ids[index]


def travel(client: LedgerClient, seconds: int) -> None:
    """Moves the devnet's clock forward and mines a block."""
    client.transport.request("evm_increaseTime", [seconds])
    client.transport.request("evm_mine", [])


def deploy_contract(client: LedgerClient, artifact_name: str, *addresses: str) -> str:
    """Deploys a shipped artifact (a test wallet) from `client`'s account; returns its address."""
    artifact = load_artifact(artifact_name)
    args = encode(["address"] * len(addresses), list(addresses)).hex()
    receipt = client._sender.transact(None, artifact.bytecode + args, f"deploy {artifact_name}")  # type: ignore[union-attr]
    return str(to_checksum_address(receipt["contractAddress"]))


def through_wallet(client: LedgerClient, wallet: str, contract: str, fn: str, args: list[Any]) -> None:
    """Calls `contract.fn(args)` as the wallet (`execute(target, data)`, sent by its signer)."""
    data = client.abis[contract].function(fn, len(args)).encode_call(args)
    execute = keccak(text="execute(address,bytes)")[:4] + encode(
        ["address", "bytes"], [client.deployment.address(contract), bytes.fromhex(data[2:])]
    )
    client._sender.transact(wallet, "0x" + execute.hex(), f"wallet calls {fn}")  # type: ignore[union-attr]
