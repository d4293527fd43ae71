"""Chain client throughput: the `LedgerClient` facade against web3 8 used with its defaults.

Reads: `UsageGrants.isAuthorized` (the check every node makes before training).
Writes: `UsageGrants.issueGrant`, each sent and waited for before the next.
Both sides sign locally with the same eth-account + coincurve, on the same fresh anvil
(anvil slows as its chain grows, so the two sides alternate within each repeat).
Figures are the median of `repeats` runs after a warm-up.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3

from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.keys import dev_account
from ledger.purposes import PURPOSES

AI = PURPOSES["ai-training"]


def _rate(operation: Callable[[int], object], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        operation(i)
    return count / (time.perf_counter() - started)


def _median_rates(
    operations: dict[str, Callable[[int], object]], count: int, repeats: int
) -> dict[str, float]:
    for operation in operations.values():  # warm-up: connections, caches, JIT-free but lazy imports
        operation(0)
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(repeats):
        for name, operation in operations.items():
            samples[name].append(_rate(operation, count))
    return {name: statistics.median(values) for name, values in samples.items()}


def run(reads: int = 300, writes: int = 40, repeats: int = 3) -> dict[str, Any]:
    """Measure reads/s and writes/s of the facade and of default web3; returns the figures and ratios."""
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        ipc_path = Path(tmp) / "anvil.ipc"
        node = start_anvil(ipc_path=ipc_path)
        try:
            deployment = deploy_contracts(
                Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0)
            )
            facade = LedgerClient.from_url(node.rpc_url, deployment, dev_account(1))
            facade_ipc = LedgerClient.from_url(str(ipc_path), deployment, dev_account(3))
            lab = dev_account(9).address
            mine, _ = facade.register_dataset(hashlib.sha256(b"bench-facade").digest())
            mine_ipc, _ = facade_ipc.register_dataset(hashlib.sha256(b"bench-facade-ipc").digest())
            theirs, _ = facade.with_account(dev_account(2)).register_dataset(
                hashlib.sha256(b"bench-web3").digest()
            )
            now = facade.latest_block().timestamp
            facade.issue_grant(mine, lab, AI, now, now + 10**6)

            # web3 as the docs show it: default middleware, contract objects, build -> sign -> send -> wait.
            w3 = Web3(Web3.HTTPProvider(node.rpc_url))
            artifact = load_artifact("UsageGrants")
            grants = w3.eth.contract(
                address=to_checksum_address(deployment.addresses["UsageGrants"]), abi=artifact.abi
            )
            web3_owner = dev_account(2)

            def web3_read(_: int) -> object:
                return grants.functions.isAuthorized(mine, lab, AI).call()

            # The same contract object after the facade's first fix alone: no validation middleware
            # (it wraps every eth_call in an extra eth_chainId round trip).
            w3_lean = Web3(Web3.HTTPProvider(node.rpc_url))
            w3_lean.middleware_onion.remove("validation")
            grants_lean = w3_lean.eth.contract(
                address=to_checksum_address(deployment.addresses["UsageGrants"]), abi=artifact.abi
            )

            def web3_lean_read(_: int) -> object:
                return grants_lean.functions.isAuthorized(mine, lab, AI).call()

            def web3_write(i: int) -> object:
                tx = grants.functions.issueGrant(theirs, lab, AI, now, now + 10**6 + i).build_transaction(
                    {"from": web3_owner.address, "nonce": w3.eth.get_transaction_count(web3_owner.address)}
                )
                signed = web3_owner.sign_transaction(dict(tx))  # type: ignore[arg-type]
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
                return w3.eth.wait_for_transaction_receipt(tx_hash)

            read_rates = _median_rates(
                {
                    "web3": web3_read,
                    "web3_no_validation": web3_lean_read,
                    "facade": lambda _: facade.is_authorized(mine, lab, AI),
                    "facade_ipc": lambda _: facade_ipc.is_authorized(mine, lab, AI),
                },
                reads,
                repeats,
            )
            write_rates = _median_rates(
                {
                    "web3": web3_write,
                    "facade": lambda i: facade.issue_grant(mine, lab, AI, now, now + 10**6 + i),
                    "facade_ipc": lambda i: facade_ipc.issue_grant(mine_ipc, lab, AI, now, now + 10**6 + i),
                },
                writes,
                repeats,
            )
        finally:
            node.stop()
    return {
        "reads_per_s_ratio": round(read_rates["facade"] / read_rates["web3"], 2),
        "facade_reads_per_s": round(read_rates["facade"], 1),
        "web3_reads_per_s": round(read_rates["web3"], 1),
        "writes_per_s_ratio": round(write_rates["facade"] / write_rates["web3"], 2),
        "facade_writes_per_s": round(write_rates["facade"], 1),
        "web3_writes_per_s": round(write_rates["web3"], 1),
        "web3_no_validation_reads_per_s": round(read_rates["web3_no_validation"], 1),
        "facade_ipc_reads_per_s": round(read_rates["facade_ipc"], 1),
        "facade_ipc_writes_per_s": round(write_rates["facade_ipc"], 1),
        "reads_per_repeat": reads,
        "writes_per_repeat": writes,
        "repeats": repeats,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
