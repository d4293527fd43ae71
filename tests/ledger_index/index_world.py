"""Helpers for the event-index tests: a real anvil, the shipped contracts, real transactions.

Independent of `ledger.chain` on purpose: the index takes a plain `Web3` and a
deployment-like object, and these tests drive the contracts with plain web3 (anvil's
unlocked dev accounts sign).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "ledger" / "artifacts"
ANVIL = REPO / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
AI_TRAINING = keccak(text="ai-training")
ANALYTICS = keccak(text="analytics")
GAS = 3_000_000


def free_port() -> int:
    """A free TCP port on 127.0.0.1 chosen by the OS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Deployment:
    """Shape of `ledger.deploy.Deployment` that the index reads."""

    chain_id: int
    addresses: dict[str, str]
    deployed_block: int


@dataclass
class Chain:
    """A running anvil: Web3, its unlocked dev accounts and the deployed contracts."""

    w3: Web3
    rpc_url: str
    accounts: list[str]
    registry: Contract = field(init=False)
    grants: Contract = field(init=False)
    ledger: Contract = field(init=False)
    deployment: Deployment = field(init=False)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A raw JSON-RPC call (anvil's evm_* methods)."""
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]

    def wait(self, tx_hash: Any) -> TxReceipt:
        """Waits for a receipt and asserts success."""
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        assert receipt["status"] == 1, f"transaction reverted: {receipt}"
        return receipt

    def send(self, sender: str, call: Any) -> TxReceipt:
        """Sends a contract call from an unlocked account and waits for its receipt."""
        return self.wait(call.transact({"from": sender, "gas": GAS}))

    def same_block(self, *calls: tuple[str, Any]) -> list[TxReceipt]:
        """Mines the calls, in order, into one block."""
        self.rpc("evm_setAutomine", [False])
        try:
            hashes = [call.transact({"from": sender, "gas": GAS}) for sender, call in calls]
            self.rpc("evm_mine")
        finally:
            self.rpc("evm_setAutomine", [True])
        receipts = [self.wait(h) for h in hashes]
        assert len({r["blockNumber"] for r in receipts}) == 1
        return receipts

    def mine(self, blocks: int = 1) -> None:
        """Mines empty blocks."""
        self.rpc("anvil_mine", [hex(blocks)])

    def deploy(self, sender: str, name: str, *args: Any) -> tuple[Contract, int]:
        """Deploys `ledger/artifacts/<name>.json`; returns the contract and its block."""
        artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self.send(sender, factory.constructor(*args))
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact["abi"]), receipt["blockNumber"]

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


def start_anvil(port: int) -> subprocess.Popen[bytes]:
    """Starts anvil in its own process group (stopped by pid at the end)."""
    return subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def dataset_root(label: str) -> bytes:
    """A 32-byte content root for a test dataset."""
    return keccak(text=f"dataset:{label}")


def digest(label: str) -> bytes:
    """A 32-byte model digest for a test model."""
    return keccak(text=f"model:{label}")


@dataclass
class World:
    """What `build_world` did, for the assertions."""

    owner_a: str
    owner_b: str
    coordinator: str
    buyer: str
    d_a1: int
    d_a2: int
    d_b: int
    job_datasets: list[int]
    round_blocks: dict[int, int] = field(default_factory=dict)
    revoke_block: int = 0
    transfer_block: int = 0
    retire_block: int = 0
    regrant_block: int = 0


def commit(chain: Chain, w: World, round_number: int, participants: Sequence[int]) -> Any:
    """A commitRound call for job 1 (parent = previous round's digest)."""
    parent = digest("init") if round_number == 1 else digest(f"r{round_number - 1}")
    mask = sum(1 << i for i, d in enumerate(w.job_datasets) if d in participants)
    return chain.ledger.functions.commitRound(
        1,
        round_number,
        parent,
        digest(f"r{round_number}"),
        f"bafkreimanifest{round_number}",
        w.job_datasets,
        mask,
        keccak(text=f"root{round_number}"),
    )


def build_world(chain: Chain) -> World:
    """Registers, grants, creates a job and commits rounds around a revocation, a deed transfer,
    a retirement and a re-grant, with a same-block revoke-then-commit."""
    _, owner_a, owner_b, coordinator, buyer = chain.accounts[:5]
    reg, grants, ledger = chain.registry.functions, chain.grants.functions, chain.ledger.functions
    r_a1, r_a2, r_b = dataset_root("a1"), dataset_root("a2"), dataset_root("b")
    d_a1, d_a2, d_b = (int.from_bytes(r, "big") for r in (r_a1, r_a2, r_b))
    chain.send(owner_a, reg.register(r_a1, 0, "ipfs://a1"))
    chain.send(owner_a, reg.register(r_a2, d_a1, "ipfs://a2"))
    chain.send(owner_b, reg.register(r_b, 0, "ipfs://b"))
    now = chain.now()
    chain.send(owner_a, grants.issueGrant(d_a1, coordinator, AI_TRAINING, now, now + 100_000))
    chain.send(owner_a, grants.issueGrant(d_a2, coordinator, AI_TRAINING, now, now + 100_000))
    chain.send(owner_b, grants.issueGrant(d_b, coordinator, AI_TRAINING, now, now + 100_000))
    # A grant whose window starts later: NOT_YET_VALID until then.
    chain.send(owner_b, grants.issueGrant(d_b, coordinator, ANALYTICS, now + 50_000, now + 60_000))
    job_datasets = sorted([d_a1, d_a2, d_b])
    w = World(owner_a, owner_b, coordinator, buyer, d_a1, d_a2, d_b, job_datasets)
    chain.send(coordinator, ledger.createJob(AI_TRAINING, job_datasets, digest("init"), digest("spec")))
    w.round_blocks[1] = chain.send(coordinator, commit(chain, w, 1, job_datasets))["blockNumber"]
    # Revocation and the next round in one block: the round must see the revocation.
    revoke, round2 = chain.same_block(
        (owner_a, grants.revokeGrant(d_a2, coordinator, AI_TRAINING)),
        (coordinator, commit(chain, w, 2, [d_a1, d_b])),
    )
    w.revoke_block = revoke["blockNumber"]
    w.round_blocks[2] = round2["blockNumber"]
    w.transfer_block = chain.send(owner_a, chain.registry.functions.transferFrom(owner_a, buyer, d_a1))[
        "blockNumber"
    ]
    w.round_blocks[3] = chain.send(coordinator, commit(chain, w, 3, [d_b]))["blockNumber"]
    w.retire_block = chain.send(owner_b, reg.retire(d_b))["blockNumber"]
    now = chain.now()
    w.regrant_block = chain.send(
        buyer, grants.issueGrant(d_a1, coordinator, AI_TRAINING, now, now + 100_000)
    )["blockNumber"]
    w.round_blocks[4] = chain.send(coordinator, commit(chain, w, 4, [d_a1]))["blockNumber"]
    # A short grant that runs out: EXPIRED once time passes its end.
    now = chain.now()
    chain.send(owner_a, grants.issueGrant(d_a2, coordinator, ANALYTICS, now, now + 5))
    chain.rpc("evm_increaseTime", [100])
    chain.mine()
    return w


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of an index file (for comparing two indexes)."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        db.close()
