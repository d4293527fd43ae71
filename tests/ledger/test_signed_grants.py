"""EIP-712 grants: the digest is the contract's, and grants signed by other signers redeem."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.abi import load_artifact
from ledger.chain.types import AuthorizationStatus
from ledger.errors import InvalidGrantSignatureError, SignedGrantFormatError
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from ledger.signed_grants import (
    GRANT_TYPE,
    grant_digest,
    grant_from_signed,
    grant_typed_data,
    recover_grant_signer,
    sign_grant,
)
from tests.conftest import DeployedChain
from tests.ledger.conftest import rpc

AI = PURPOSES["ai-training"]


def _typed(chain: DeployedChain, dataset_id: int, nonce: int = 0) -> dict[str, Any]:
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
    )


def test_digest_matches_the_contract(deployed: DeployedChain, new_root: Callable[[], bytes]) -> None:
    client = deployed[0]
    grants = deployed.deployment.address("UsageGrants")
    typed = _typed(deployed, 2**255 + 12345)
    (typehash,) = client._call("UsageGrants", "GRANT_TYPEHASH", [])
    assert bytes(typehash) == keccak(text=GRANT_TYPE)
    (fields, name, version, chain_id, verifying, _salt, _ext) = client._call(
        "UsageGrants", "eip712Domain", []
    )
    assert (name, version, chain_id, verifying) == ("UsageGrants", "1", client.chain_id, grants)
    assert fields == b"\x0f"
    # Recompute the digest from the contract's own domain separator and type hash.
    message = typed["message"]
    struct_hash = keccak(
        encode(
            ["bytes32", "uint256", "address", "bytes32", "uint64", "uint64", "uint256", "uint256"],
            [
                bytes(typehash),
                int(message["datasetId"]),
                message["grantee"],
                AI,
                message["notBefore"],
                message["expiresAt"],
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
    typed = _typed(any_chain, dataset_id)
    signature = rpc(any_chain, "eth_signTypedData_v4", [owner.address, json.dumps(typed)])
    signed = dict(typed, signature=signature)
    assert recover_grant_signer(signed) == owner.address
    lab.issue_grant_by_sig(signed)
    assert owner.is_authorized(dataset_id, str(lab.address), AI)


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


def test_malformed_documents_are_refused_before_sending(deployed: DeployedChain) -> None:
    lab = deployed[2]
    signed = sign_grant(dev_account(1), _typed(deployed, 1))
    nonce_before = lab.transport.request("eth_getTransactionCount", [lab.address, "pending"])
    cases: list[tuple[dict[str, Any], str]] = []
    wrong_type = copy.deepcopy(signed)
    wrong_type["primaryType"] = "Permit"
    cases.append((wrong_type, "primaryType is 'Permit'"))
    wrong_domain = copy.deepcopy(signed)
    wrong_domain["domain"]["name"] = "TrainingLedger"
    cases.append((wrong_domain, "domain is 'TrainingLedger'"))
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    cases.append((unsigned, "no 0x-hex `signature`"))
    short = dict(signed, signature="0x1234")
    cases.append((short, "is 2 bytes, expected 65"))
    other_chain = copy.deepcopy(signed)
    other_chain["domain"]["chainId"] = 1
    cases.append((other_chain, "signed for chain 1, this node is chain 31337"))
    fields = copy.deepcopy(signed)
    fields["types"]["Grant"] = fields["types"]["Grant"][:-1]
    cases.append((fields, "types.Grant is not Grant"))
    for document, message in cases:
        with pytest.raises(SignedGrantFormatError, match=message):
            lab.issue_grant_by_sig(document)
    assert lab.transport.request("eth_getTransactionCount", [lab.address, "pending"]) == nonce_before
    parsed = grant_from_signed(signed)
    assert parsed.dataset_id == 1 and parsed.purpose == AI and len(parsed.signature) == 65
    assert encode_typed_data(full_message={k: v for k, v in signed.items() if k != "signature"})
