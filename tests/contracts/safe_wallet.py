"""A real Safe (npm `@safe-global/safe-smart-account`) on the devnet, driven from web3.

The compiled artifacts are read from node_modules at test time (the project does not copy
them). `deploy_safe_stack` deploys the Safe singleton, SafeProxyFactory and the
CompatibilityFallbackHandler (which answers EIP-1271 `isValidSignature` for a Safe);
`create_safe` makes an n-of-m Safe proxy; `exec_transaction` runs a call as the Safe with its
owners' signatures; `safe_message_signature` is the EIP-1271 signature of a 32-byte digest as
the Safe's owners produce it in their wallets (eth_signTypedData_v4 of `SafeMessage`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import RPCEndpoint, TxReceipt

from tests.contracts.devchain import REPO

SAFE_PACKAGE = REPO / "node_modules" / "@safe-global" / "safe-smart-account"
SAFE_ARTIFACTS = SAFE_PACKAGE / "build" / "artifacts" / "contracts"
ZERO = "0x0000000000000000000000000000000000000000"


def safe_artifact(relative: str) -> dict[str, Any]:
    """A Hardhat artifact of the Safe package, e.g. `Safe.sol/Safe.json`."""
    artifact: dict[str, Any] = json.loads((SAFE_ARTIFACTS / relative).read_text())
    return artifact


def safe_version() -> str:
    """The installed package's version (the tests name it in their messages)."""
    version: str = json.loads((SAFE_PACKAGE / "package.json").read_text())["version"]
    return version


def send(w3: Web3, account: LocalAccount, call: Any) -> TxReceipt:
    """Build (gas estimated), sign, send and wait; the transaction must succeed."""
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address),
            "chainId": w3.eth.chain_id,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
        }
    )
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=30, poll_latency=0.01
    )
    assert receipt["status"] == 1, f"transaction reverted: {receipt}"
    return receipt


def _deploy(w3: Web3, account: LocalAccount, relative: str) -> Contract:
    artifact = safe_artifact(relative)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    address = send(w3, account, factory.constructor())["contractAddress"]
    assert address is not None
    return w3.eth.contract(address=address, abi=artifact["abi"])


@dataclass(frozen=True)
class SafeStack:
    """The deployed Safe singleton, proxy factory and fallback handler."""

    singleton: Contract
    factory: Contract
    handler: Contract


def deploy_safe_stack(w3: Web3, deployer: LocalAccount) -> SafeStack:
    """Deploy Safe, SafeProxyFactory and CompatibilityFallbackHandler from the npm artifacts."""
    return SafeStack(
        singleton=_deploy(w3, deployer, "Safe.sol/Safe.json"),
        factory=_deploy(w3, deployer, "proxies/SafeProxyFactory.sol/SafeProxyFactory.json"),
        handler=_deploy(
            w3, deployer, "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json"
        ),
    )


def create_safe(
    w3: Web3, stack: SafeStack, payer: LocalAccount, owners: list[str], threshold: int, salt: int
) -> Contract:
    """A Safe proxy with `owners` and `threshold`, whose fallback handler answers EIP-1271."""
    initializer = stack.singleton.encode_abi(
        "setup", args=[owners, threshold, ZERO, b"", stack.handler.address, ZERO, 0, ZERO]
    )
    receipt = send(
        w3, payer, stack.factory.functions.createProxyWithNonce(stack.singleton.address, initializer, salt)
    )
    (created,) = stack.factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    safe = cast(Contract, w3.eth.contract(address=created["args"]["proxy"], abi=stack.singleton.abi))
    assert sorted(safe.functions.getOwners().call()) == sorted(owners)
    assert safe.functions.getThreshold().call() == threshold
    return safe


def _sorted_signatures(signatures: Mapping[str, bytes]) -> bytes:
    """Safe wants owner signatures concatenated in ascending owner-address order."""
    return b"".join(signatures[owner] for owner in sorted(signatures, key=lambda a: int(a, 16)))


def exec_transaction(
    w3: Web3, safe: Contract, signers: list[LocalAccount], submitter: LocalAccount, to: str, data: bytes
) -> TxReceipt:
    """Run `to.call(data)` as the Safe, authorised by `signers`' ECDSA signatures of the SafeTx hash."""
    args = [to, 0, data, 0, 0, 0, 0, ZERO, ZERO]
    tx_hash = safe.functions.getTransactionHash(*args, safe.functions.nonce().call()).call()
    signatures: dict[str, bytes] = {}
    for signer in signers:
        signed = signer.unsafe_sign_hash(tx_hash)
        signatures[signer.address] = (
            signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
        )
    receipt = send(w3, submitter, safe.functions.execTransaction(*args, _sorted_signatures(signatures)))
    failures = safe.events.ExecutionFailure().process_receipt(receipt, errors=DISCARD)
    assert not failures, f"the Safe's call to {to} failed"
    return receipt


def safe_message_typed_data(chain_id: int, safe: str, digest: bytes) -> dict[str, Any]:
    """The eth_signTypedData_v4 document a Safe owner signs to approve `digest` for EIP-1271.

    Safe's CompatibilityFallbackHandler checks `SafeMessage(bytes message)` with
    `message = abi.encode(digest)` (the 32 bytes) under the domain (chainId, verifyingContract = the Safe).
    """
    return {
        "types": {
            "EIP712Domain": [
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "SafeMessage": [{"name": "message", "type": "bytes"}],
        },
        "primaryType": "SafeMessage",
        "domain": {"chainId": chain_id, "verifyingContract": to_checksum_address(safe)},
        "message": {"message": "0x" + digest.hex()},
    }


def safe_message_signature(w3: Web3, safe: Contract, owners: Sequence[str], digest: bytes) -> bytes:
    """The Safe's EIP-1271 signature of `digest`: each owner's wallet signs the SafeMessage.

    The owners are accounts the node holds (anvil's unlocked dev accounts), so the signatures
    come from the node's own EIP-712 implementation, not from this test's code.
    """
    typed = safe_message_typed_data(w3.eth.chain_id, safe.address, digest)
    signatures: dict[str, bytes] = {}
    for owner in owners:
        signature = w3.provider.make_request(RPCEndpoint("eth_signTypedData_v4"), [owner, json.dumps(typed)])
        assert "result" in signature, signature
        signatures[to_checksum_address(owner)] = bytes.fromhex(str(signature["result"])[2:])
    return _sorted_signatures(signatures)
