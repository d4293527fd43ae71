"""200 concurrent API writes and reads against a real uvicorn on loopback: nothing lost, nothing twice.

The service runs as `sov serve` does (uvicorn, one process) in its own process group, signing with
dev3, an account nothing else in the test uses, so its nonce counts exactly the service's
transactions. Setup (sequential, through the API): register datasets and issue the grants the load
phase revokes. Load phase (50 threads at once, shuffled): 70 issues on fresh (dataset, grantee)
keys, 30 revokes of the pre-issued keys, 100 reads (checks and lists). Afterwards every grant is
read back from the chain and every event and transaction of the service's account is counted.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli.serve import ServiceProcess
from ledger.devnet import free_port
from ledger.keys import dev_account
from ledger.settings import Settings

REPO = Path(__file__).resolve().parents[2]
RNG = random.Random(20261127)
OPERATOR = dev_account(3)
GRANTEES = [str(dev_account(i).address) for i in (4, 5, 6, 7, 8)]
DATASETS = 20
PRE_ISSUED = 30
NEW_ISSUES = 70
READS = 100
THREADS = 50
REQUEST_TIMEOUT_S = 30.0
LOAD_DEADLINE_S = 60.0


@dataclass
class Server:
    """A running `sov serve` process and how to talk to it."""

    base_url: str
    token: str
    service: ServiceProcess

    @property
    def auth(self) -> dict[str, str]:
        """The header every write needs."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture()
def server(deployed: Any, tmp_path: Path) -> Iterator[Server]:
    from ledger.deploy import save_deployment

    home = tmp_path / "home"
    save_deployment(Settings(home=home), deployed.deployment)
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        "SOV_HOME": str(home),
        "SOV_RPC_URL": deployed.rpc_url,
        "SOV_API_TOKEN": token,
        "SOV_API_ACCOUNT": "dev3",
        "SOV_API_INDEX_SYNC_INTERVAL": "0",
        "PYTHONPATH": str(REPO),
    }
    with ServiceProcess(env, port, tmp_path / "server.log", timeout_s=30) as service:
        yield Server(service.url, token, service)
    assert service.process.returncode is not None


@dataclass
class Outcome:
    """One request of the load phase and what came back."""

    kind: str  # issue | revoke | check | list
    key: tuple[int, str]
    status: int
    body: dict[str, Any]


def _nonce(deployed: Any, address: str) -> int:
    return int(deployed[0].transport.request("eth_getTransactionCount", [address, "latest"]), 16)


def _transactions_from(deployed: Any, address: str) -> list[str]:
    """Hashes of every transaction `address` sent, read block by block (anvil mines one per tx)."""
    client = deployed[0]
    hashes: list[str] = []
    for number in range(client.latest_block().number + 1):
        block = client.transport.request("eth_getBlockByNumber", [hex(number), True])
        hashes += [tx["hash"] for tx in block["transactions"] if tx["from"].lower() == address.lower()]
    return hashes


def test_200_concurrent_writes_and_reads_lose_and_duplicate_nothing(server: Server, deployed: Any) -> None:
    chain = deployed[0]
    operator = str(OPERATOR.address)
    assert _nonce(deployed, operator) == 0
    events_before = Counter(e.name for e in chain.get_logs(chain.deployment.deployed_block))

    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S) as http:
        # ---- setup, sequential: datasets and the grants the load phase revokes.
        datasets: list[int] = []
        for _ in range(DATASETS):
            response = http.post(
                "/v1/datasets", json={"content_root": "0x" + secrets.token_hex(32)}, headers=server.auth
            )
            assert response.status_code == 201, response.text
            datasets.append(int(response.json()["dataset"]["dataset_id"]))
        keys = [(d, g) for d in datasets for g in GRANTEES]
        RNG.shuffle(keys)
        pre_keys, new_keys = keys[:PRE_ISSUED], keys[PRE_ISSUED : PRE_ISSUED + NEW_ISSUES]
        now = chain.latest_block().timestamp
        # Distinct windows per key, so a grant landing under the wrong key would show.
        window = {key: (now - 10, now + 3600 + i) for i, key in enumerate(keys)}
        for key in pre_keys:
            response = http.post(
                "/v1/grants",
                json={
                    "dataset_id": str(key[0]),
                    "grantee": key[1],
                    "purpose": "ai-training",
                    "not_before": window[key][0],
                    "expires_at": window[key][1],
                },
                headers=server.auth,
            )
            assert response.status_code == 201, response.text
        setup_txs = DATASETS + PRE_ISSUED
        assert _nonce(deployed, operator) == setup_txs

        # ---- load phase: every request at once from THREADS threads, writes and reads shuffled.
        plan: list[tuple[str, tuple[int, str]]] = [("issue", k) for k in new_keys]
        plan += [("revoke", k) for k in pre_keys]
        plan += [("check", RNG.choice(pre_keys + new_keys)) for _ in range(READS * 3 // 4)]
        plan += [("list", (RNG.choice(datasets), "")) for _ in range(READS - READS * 3 // 4)]
        RNG.shuffle(plan)
        assert len(plan) == 200

        def send(kind: str, key: tuple[int, str]) -> Outcome:
            dataset_id, grantee = key
            if kind == "issue":
                not_before, expires_at = window[key]
                body = {
                    "dataset_id": str(dataset_id),
                    "grantee": grantee,
                    "purpose": "ai-training",
                    "not_before": not_before,
                    "expires_at": expires_at,
                }
                response = http.post("/v1/grants", json=body, headers=server.auth)
            elif kind == "revoke":
                body = {"dataset_id": str(dataset_id), "grantee": grantee, "purpose": "ai-training"}
                response = http.post("/v1/grants/revoke", json=body, headers=server.auth)
            elif kind == "check":
                params = {"dataset_id": str(dataset_id), "grantee": grantee, "purpose": "ai-training"}
                response = http.get("/v1/grants/check", params=params)
            else:
                response = http.get("/v1/grants", params={"dataset_id": str(dataset_id)})
            return Outcome(kind, key, response.status_code, response.json())

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            futures = [pool.submit(send, kind, key) for kind, key in plan]
            outcomes = [f.result(timeout=LOAD_DEADLINE_S) for f in futures]
        elapsed = time.monotonic() - started
        assert elapsed < LOAD_DEADLINE_S

    # ---- every answer: no 5xx, and every write succeeded.
    statuses = Counter((o.kind, o.status) for o in outcomes)
    assert statuses == Counter(
        {
            ("issue", 201): NEW_ISSUES,
            ("revoke", 200): PRE_ISSUED,
            ("check", 200): READS * 3 // 4,
            ("list", 200): READS - READS * 3 // 4,
        }
    ), [o for o in outcomes if o.status >= 300][:3]
    writes = [o for o in outcomes if o.kind in ("issue", "revoke")]
    tx_hashes = [o.body["receipt"]["tx_hash"] for o in writes]
    assert len(set(tx_hashes)) == len(writes) == NEW_ISSUES + PRE_ISSUED
    revoked_at = {o.key: int(o.body["receipt"]["block_number"]) for o in writes if o.kind == "revoke"}
    issued_at = {o.key: int(o.body["receipt"]["block_number"]) for o in writes if o.kind == "issue"}
    for write in writes:
        assert write.body["grant"]["revoked"] is (write.kind == "revoke")
        assert (int(write.body["grant"]["dataset_id"]), write.body["grant"]["grantee"]) == write.key

    # ---- every read is the truth at the block it names.
    for read in (o for o in outcomes if o.kind == "check"):
        block = int(read.body["block_number"])
        if read.key in revoked_at:
            assert read.body["authorized"] is (block < revoked_at[read.key]), (read, revoked_at[read.key])
        else:
            assert read.body["authorized"] is (block >= issued_at[read.key]), (read, issued_at[read.key])
    for listing in (o for o in outcomes if o.kind == "list"):
        assert all(int(item["dataset_id"]) == listing.key[0] for item in listing.body["items"])

    # ---- the chain holds exactly what was written, once.
    for key in pre_keys + new_keys:
        grant = chain.get_grant(key[0], key[1], "ai-training")
        assert (grant.not_before, grant.expires_at) == window[key]
        assert grant.revoked is (key in revoked_at)
        assert chain.is_authorized(key[0], key[1], "ai-training") is (key not in revoked_at)
    events = chain.get_logs(chain.deployment.deployed_block)
    added = Counter(e.name for e in events) - events_before
    assert {name: added[name] for name in ("DatasetRegistered", "GrantIssued", "GrantRevoked")} == {
        "DatasetRegistered": DATASETS,
        "GrantIssued": PRE_ISSUED + NEW_ISSUES,
        "GrantRevoked": PRE_ISSUED,
    }
    load_events = [e for e in events if e.name in ("GrantIssued", "GrantRevoked") and e.tx_hash in tx_hashes]
    assert sorted(e.tx_hash for e in load_events) == sorted(tx_hashes)
    sent = _transactions_from(deployed, operator)
    assert _nonce(deployed, operator) == len(sent) == len(set(sent)) == setup_txs + len(writes)
    assert set(tx_hashes) <= set(sent)
    assert server.service.process.poll() is None, server.service.log_path.read_text()[-2000:]
