"""Off-chain grants signed in Python are accepted on-chain, for EOAs and EIP-1271 wallets.

Pins the EIP-712 type of DESIGN.md (`Grant(...)` with terms, domain `UsageGrants` / `2`) between
eth-account's `eth_signTypedData_v4` encoding and the contract, and shows that a wallet
refusing the signature leaves the chain unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from tests.contracts.devchain import Chain, Deployed

AI_TRAINING = Web3.keccak(text="ai-training")
FAR = 4_102_444_800
GRANT_FIELDS = [
    {"name": "datasetId", "type": "uint256"},
    {"name": "grantee", "type": "address"},
    {"name": "purpose", "type": "bytes32"},
    {"name": "notBefore", "type": "uint64"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "epsilonHundredths", "type": "uint16"},
    {"name": "deltaNegExponent", "type": "uint8"},
    {"name": "minParticipants", "type": "uint8"},
    {"name": "maxRounds", "type": "uint16"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def typed_grant(chain: Chain, grants: Contract, message: dict[str, Any]) -> dict[str, Any]:
    """The eth_signTypedData_v4 document of a grant."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Grant": GRANT_FIELDS,
        },
        "primaryType": "Grant",
        "domain": {
            "name": "UsageGrants",
            "version": "2",
            "chainId": chain.w3.eth.chain_id,
            "verifyingContract": grants.address,
        },
        "message": message,
    }


def selector(signature: str) -> str:
    """The 4-byte selector of a Solidity error signature, 0x-prefixed."""
    return "0x" + keccak(text=signature)[:4].hex()


def register_via_wallet(
    chain: Chain, wallet: Contract, driver: LocalAccount, registry: Contract, root: bytes
) -> int:
    """Register `root` with the wallet contract as the deed holder."""
    data = registry.encode_abi("register", args=[root, 0, ""])
    chain.send(driver, wallet.functions.execute(registry.address, data))
    return int.from_bytes(root, "big")


def grant_message(dataset_id: int, grantee: str, nonce: int) -> dict[str, Any]:
    """A grant message valid until 2100."""
    return {
        "datasetId": dataset_id,
        "grantee": grantee,
        "purpose": AI_TRAINING,
        "notBefore": 0,
        "expiresAt": FAR,
        "epsilonHundredths": 300,
        "deltaNegExponent": 5,
        "minParticipants": 3,
        "maxRounds": 50,
        "nonce": nonce,
        "deadline": FAR,
    }


def by_sig_args(message: dict[str, Any]) -> list[Any]:
    """`issueGrantBySig` arguments (without the signature): the terms go as one tuple."""
    m = message
    terms = (m["epsilonHundredths"], m["deltaNegExponent"], m["minParticipants"], m["maxRounds"])
    head = [m["datasetId"], m["grantee"], m["purpose"], m["notBefore"], m["expiresAt"]]
    return [*head, terms, m["nonce"], m["deadline"]]


def test_domain_matches_eip5267(chain: Chain, deployed: Deployed) -> None:
    """eip712Domain() reports the domain Python signs under."""
    fields, name, version, chain_id, verifying, _salt, _ext = deployed.grants.functions.eip712Domain().call()
    assert (fields, name, version, chain_id, verifying) == (
        b"\x0f",
        "UsageGrants",
        "2",
        chain.w3.eth.chain_id,
        deployed.grants.address,
    )


def test_eip1271_wallet_that_approves(chain: Chain, deployed: Deployed) -> None:
    """A grant signed by the wallet's EOA is accepted for the wallet-owned dataset."""
    driver, coordinator, relayer = chain.accounts[1], chain.accounts[2], chain.accounts[3]
    wallet = chain.deploy(chain.accounts[0], "MockSignerWallet", driver.address)
    dataset_id = register_via_wallet(chain, wallet, driver, deployed.registry, keccak(b"wallet-data"))
    message = grant_message(dataset_id, coordinator.address, 0)
    signature = driver.sign_message(
        encode_typed_data(full_message=typed_grant(chain, deployed.grants, message))
    )
    call = deployed.grants.functions.issueGrantBySig(*by_sig_args(message), bytes(signature.signature))
    chain.send(relayer, call)
    assert deployed.grants.functions.isAuthorized(dataset_id, coordinator.address, AI_TRAINING).call()
    assert deployed.grants.functions.nonces(wallet.address).call() == 1


def test_eip1271_wallet_that_refuses(chain: Chain, deployed: Deployed) -> None:
    """A refusing wallet makes the call revert with UsageGrantsInvalidSignature; nothing changes."""
    signer, coordinator, relayer = chain.accounts[1], chain.accounts[2], chain.accounts[3]
    wallet = chain.deploy(chain.accounts[0], "MockRejectingWallet")
    dataset_id = register_via_wallet(chain, wallet, signer, deployed.registry, keccak(b"refusing"))
    message = grant_message(dataset_id, coordinator.address, 0)
    signature = signer.sign_message(
        encode_typed_data(full_message=typed_grant(chain, deployed.grants, message))
    )
    call = deployed.grants.functions.issueGrantBySig(*by_sig_args(message), bytes(signature.signature))
    with pytest.raises(ContractCustomError) as caught:
        call.call({"from": relayer.address})
    expected = selector("UsageGrantsInvalidSignature(uint256,address)")
    expected += dataset_id.to_bytes(32, "big").hex() + bytes(12).hex() + wallet.address[2:].lower()
    assert str(caught.value.data).lower() == expected
    assert not deployed.grants.functions.isAuthorized(dataset_id, coordinator.address, AI_TRAINING).call()
    assert deployed.grants.functions.nonces(wallet.address).call() == 0


def test_replayed_python_signature_is_refused(chain: Chain, deployed: Deployed) -> None:
    """The same signed grant cannot be submitted twice (sequential nonce)."""
    owner, coordinator, relayer = chain.accounts[1], chain.accounts[2], chain.accounts[3]
    root = keccak(b"replay")
    chain.send(owner, deployed.registry.functions.register(root, 0, ""))
    dataset_id = int.from_bytes(root, "big")
    message = grant_message(dataset_id, coordinator.address, 0)
    signature = owner.sign_message(
        encode_typed_data(full_message=typed_grant(chain, deployed.grants, message))
    )
    call = deployed.grants.functions.issueGrantBySig(*by_sig_args(message), bytes(signature.signature))
    chain.send(relayer, call)
    with pytest.raises(ContractCustomError) as caught:
        call.call({"from": relayer.address})
    expected = selector("UsageGrantsInvalidNonce(address,uint256,uint256)")
    expected += bytes(12).hex() + owner.address[2:].lower() + (1).to_bytes(32, "big").hex() + bytes(32).hex()
    assert str(caught.value.data).lower() == expected
    assert deployed.grants.functions.nonces(owner.address).call() == 1
