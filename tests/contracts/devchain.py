"""Helpers for the contract tests: anvil process, plain-web3 sender and deployer.

Kept independent of `ledger.chain` on purpose: these tests pin down the contracts and
their shipped artifacts, so they must not depend on the client that is built on top.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.types import TxReceipt

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "ledger" / "artifacts"
ANVIL = REPO / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's default dev mnemonic: its accounts are pre-funded.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def free_port() -> int:
    """Ask the OS for a free TCP port on 127.0.0.1 (anvil has no `--port 0`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_artifact(name: str) -> dict[str, Any]:
    """The exported artifact `ledger/artifacts/<name>.json`."""
    artifact: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return artifact


@dataclass
class Chain:
    """A running anvil with a connected Web3 and funded dev accounts."""

    w3: Web3
    accounts: list[LocalAccount]

    def send(self, account: LocalAccount, call: Any) -> TxReceipt:
        """Build, sign, send a contract call and wait for a successful receipt.

        The gas limit is fixed rather than estimated: gasUsed does not depend on it, and
        skipping the estimate halves the round trips of the 200-transaction gas test.
        """
        tx = call.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address),
                "chainId": 31337,
                "gas": 5_000_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 1,
            }
        )
        return self._sign_and_wait(account, tx)

    def deploy(self, account: LocalAccount, name: str, *args: Any) -> Contract:
        """Deploy the exported artifact `name` with constructor `args`."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self.send(account, factory.constructor(*args))
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact["abi"])

    def _sign_and_wait(self, account: LocalAccount, tx: Any) -> TxReceipt:
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        assert receipt["status"] == 1, f"transaction reverted: {receipt}"
        return receipt


@dataclass
class Deployed:
    """The three contracts, deployed in dependency order."""

    registry: Contract
    grants: Contract
    ledger: Contract


def deploy_all(chain: Chain, deployer: LocalAccount) -> Deployed:
    """Deploy DatasetRegistry, UsageGrants(registry), TrainingLedger(registry, grants)."""
    registry = chain.deploy(deployer, "DatasetRegistry")
    grants = chain.deploy(deployer, "UsageGrants", registry.address)
    ledger = chain.deploy(deployer, "TrainingLedger", registry.address, grants.address)
    return Deployed(registry=registry, grants=grants, ledger=ledger)


def content_roots(count: int, salt: bytes) -> Sequence[bytes]:
    """`count` distinct 32-byte roots in ascending order (as sha256 digests would be sorted)."""
    roots = sorted(Web3.keccak(salt + i.to_bytes(4, "big")) for i in range(count))
    return [bytes(r) for r in roots]


@contextmanager
def running_anvil() -> Iterator[Chain]:
    """A fresh anvil (own process group, stopped by pid) and ten funded dev accounts."""
    port = free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
        deadline = time.monotonic() + 15
        while not w3.is_connected():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start on port {port}")
            time.sleep(0.05)
        Account.enable_unaudited_hdwallet_features()
        accounts = [
            Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)
        ]
        yield Chain(w3=w3, accounts=accounts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
