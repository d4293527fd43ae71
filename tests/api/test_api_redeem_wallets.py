"""`POST /v1/grants/redeem` takes what real wallets produce, and refuses what revocation and
cancellation made worthless, against a real anvil with the contracts deployed.

Wallet forms: integers as 0x-hex or decimal strings and JSON numbers (ethers writes
`domain.chainId` as "0x7a69"), 64-byte EIP-2098 signatures, a contract (EIP-1271) owner: the
shipped `MockSignerWallet` and a real 2-of-3 Safe from the npm artifacts with its 130-byte
signature. The dishonest party keeps a signature the owner later revoked or cancelled and
submits it: refused with a typed 409, and the chain's state is what it was.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient
from web3 import HTTPProvider, Web3

from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.keys import dev_account
from ledger.signed_grants import grant_digest, grant_typed_data, sign_grant
from tests.contracts.safe_wallet import (
    create_safe,
    deploy_safe_stack,
    exec_transaction,
    safe_message_signature,
    send,
)

FAR = 2**40
LAB = str(dev_account(2).address)
AI = "ai-training"
# The purpose id of ai-training, as the response and the revert arguments spell it.
AI_ID = "0x" + keccak(text="ai-training").hex()

Chain = Callable[[int], LedgerClient]


def _register(chain: Chain, owner_index: int) -> int:
    dataset_id, _ = chain(owner_index).register_dataset(secrets.token_bytes(32))
    return dataset_id


def _typed(
    reader: LedgerClient, dataset_id: int, owner: str, *, expires_at: int = FAR, nonce: int | None = None
) -> dict[str, Any]:
    """The unsigned grant of `dataset_id` to the lab, at `owner`'s next nonce unless given."""
    return grant_typed_data(
        reader.chain_id,
        reader.deployment.address("UsageGrants"),
        dataset_id,
        LAB,
        AI,
        0,
        expires_at,
        reader.nonces(owner) if nonce is None else nonce,
        FAR,
    )


def _state(reader: LedgerClient, dataset_id: int, owner: str) -> tuple[Any, ...]:
    """What a refused redeem must leave alone: the grant record, its status and the owner's nonce."""
    return (
        reader.get_grant(dataset_id, LAB, AI),
        reader.authorization_status(dataset_id, LAB, AI),
        reader.nonces(owner),
    )


def _refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def _compact(signature: str) -> str:
    """A 65-byte (r, s, v) signature in its 64-byte EIP-2098 form (r, yParity << 255 | s)."""
    raw = bytes.fromhex(signature[2:])
    vs = ((raw[64] - 27) << 255) | int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + vs.to_bytes(32, "big")).hex()


def test_hex_and_decimal_strings_and_numbers_redeem_and_name_the_account_owner(
    client: TestClient, auth: dict[str, str], chain: Chain
) -> None:
    """ethers' hex chainId, hex nonce and deadline, a lowercase grantee, a JSON float expiry."""
    owner = dev_account(5)
    dataset_id = _register(chain, 5)
    signed = sign_grant(owner, _typed(chain(0), dataset_id, owner.address))
    nonce = chain(0).nonces(owner.address)
    signed["domain"]["chainId"] = "0x7a69"
    signed["message"].update(
        {
            "datasetId": hex(dataset_id),
            "grantee": LAB.lower(),
            "notBefore": "0",
            "expiresAt": float(FAR),
            "nonce": hex(nonce),
            "deadline": hex(FAR),
        }
    )
    response = client.post("/v1/grants/redeem", json=signed, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["owner"], body["owner_kind"], body["signer"]) == (owner.address, "account", owner.address)
    grant = body["grant"]
    assert (grant["dataset_id"], grant["grantee"], grant["purpose_id"]) == (str(dataset_id), LAB, AI_ID)
    assert (grant["expires_at"], grant["status"]) == (FAR, "authorized")
    assert body["receipt"]["block_number"] == grant["block_number"]
    assert chain(0).is_authorized(dataset_id, LAB, AI)
    assert chain(0).nonces(owner.address) == nonce + 1

    # The owner's next grant in EIP-2098 compact form (64 bytes) redeems too.
    second = sign_grant(owner, _typed(chain(0), dataset_id, owner.address, expires_at=FAR + 1))
    second["signature"] = _compact(second["signature"])
    response = client.post("/v1/grants/redeem", json=second, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["signer"] == owner.address
    assert chain(0).get_grant(dataset_id, LAB, AI).expires_at == FAR + 1


def test_malformed_values_are_422_naming_the_field_and_change_nothing(
    client: TestClient, auth: dict[str, str], chain: Chain
) -> None:
    owner = dev_account(7)
    dataset_id = _register(chain, 7)
    valid = sign_grant(owner, _typed(chain(0), dataset_id, owner.address))
    mixed = LAB[:2] + LAB[2:].swapcase()
    cases: list[tuple[str | None, str, Any, str, str]] = [
        ("domain", "chainId", "0x", "domain.chainId", "domain.chainId is '0x', not a valid 0x-hex number"),
        ("domain", "chainId", True, "domain.chainId", "domain.chainId is True: expected a uint256"),
        ("message", "nonce", "12a", "message.nonce", "message.nonce is '12a': expected a uint256"),
        ("message", "notBefore", 1.5, "message.notBefore", "message.notBefore is 1.5, not an integer"),
        (
            "message",
            "expiresAt",
            float(2**60),
            "message.expiresAt",
            "too large to be exact (over 2**53); write it as a decimal or 0x-hex string",
        ),
        ("message", "expiresAt", 2**64, "message.expiresAt", "out of range for uint64"),
        (
            "message",
            "grantee",
            mixed,
            "message.grantee",
            f"has an invalid EIP-55 checksum (did you mean {LAB}?)",
        ),
        ("message", "purpose", "0x1234", "message.purpose", "message.purpose is 2 bytes, expected 32"),
        ("domain", "version", "3", "domain.version", "expected 'UsageGrants' version '2'"),
        ("domain", "version", "1", "domain.version", "signed for UsageGrants version 1"),
        ("domain", "name", "Grants", "domain.name", "domain is 'Grants' version '2', expected 'UsageGrants'"),
        ("message", "minParticipants", 256, "message.minParticipants", "out of range for uint8"),
        (None, "signature", "0xabc", "signature", "`signature` is not hex"),
        (
            None,
            "signature",
            "0x" + "ab" * 66,
            "signature",
            "`signature` is 66 bytes; an account (EOA) owner's",
        ),
    ]
    before = _state(chain(0), dataset_id, owner.address)
    for section, key, value, field, fragment in cases:
        document = copy.deepcopy(valid)
        (document[section] if section else document)[key] = value
        response = client.post("/v1/grants/redeem", json=document, headers=auth)
        error = _refused(response, 422, "invalid_request")
        assert error["message"].startswith("invalid request: "), error
        assert fragment in error["message"], (key, value, error["message"])
        assert [f["field"] for f in error["details"]["fields"]] == [field], (key, value, error)
    # Keys a wallet does not sign are refused by name rather than dropped.
    for section, key in (("message", "minRounds"), ("domain", "salt"), (None, "signer")):
        document = copy.deepcopy(valid)
        (document[section] if section else document)[key] = "1"
        error = _refused(
            client.post("/v1/grants/redeem", json=document, headers=auth), 422, "invalid_request"
        )
        where = f"{section}.{key}" if section else key
        assert [f["field"] for f in error["details"]["fields"]] == [where], error
    assert _state(chain(0), dataset_id, owner.address) == before
    # None of it used the owner's nonce: the untouched document still redeems.
    assert client.post("/v1/grants/redeem", json=valid, headers=auth).status_code == 201


def _deploy_signer_wallet(w3: Web3, signer: LocalAccount) -> str:
    artifact = load_artifact("MockSignerWallet")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    address = send(w3, signer, factory.constructor(signer.address))["contractAddress"]
    assert address is not None
    return str(to_checksum_address(address))


def _register_as_wallet(w3: Web3, reader: LedgerClient, wallet: str, signer: LocalAccount) -> int:
    """The wallet registers a fresh root (its signer drives `execute`), so the wallet holds the deed."""
    root = secrets.token_bytes(32)
    registry = reader.deployment.address("DatasetRegistry")
    register = reader.abis["DatasetRegistry"].function("register", 3).encode_call([root, 0, "ipfs://wallet"])
    execute = keccak(text="execute(address,bytes)")[:4] + encode(
        ["address", "bytes"], [registry, bytes.fromhex(register[2:])]
    )
    tx = {
        "from": signer.address,
        "to": wallet,
        "data": "0x" + execute.hex(),
        "nonce": w3.eth.get_transaction_count(signer.address),
        "chainId": w3.eth.chain_id,
        "gas": 500_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
    }
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction),
        timeout=30,
        poll_latency=0.01,
    )
    assert receipt["status"] == 1
    dataset_id = int.from_bytes(root, "big")
    assert reader.dataset_state(dataset_id).owner == wallet
    return dataset_id


def test_eip1271_wallet_owned_dataset_redeems_and_reports_the_wallet(
    client: TestClient, auth: dict[str, str], chain: Chain, settings: Any
) -> None:
    w3 = Web3(HTTPProvider(settings.rpc_url))
    signer = dev_account(4)
    wallet = _deploy_signer_wallet(w3, signer)
    dataset_id = _register_as_wallet(w3, chain(0), wallet, signer)
    typed = _typed(chain(0), dataset_id, wallet)
    typed["domain"]["chainId"] = hex(chain(0).chain_id)

    # The dishonest lab signs for the wallet's dataset with its own key, or pads the signer's
    # signature to a Safe's length: the bytes reach the wallet (no 65-byte rule for a contract
    # owner) and the wallet refuses them.
    honest = sign_grant(signer, typed)
    before = _state(chain(0), dataset_id, wallet)
    for forged in (
        sign_grant(dev_account(2), typed),
        dict(honest, signature=honest["signature"] + "00" * 65),
    ):
        error = _refused(
            client.post("/v1/grants/redeem", json=forged, headers=auth), 422, "usage_grants_invalid_signature"
        )
        assert error["message"].startswith(
            f"redeem signed grant: the signature is not that of {wallet}, the owner of dataset"
        ), error
        assert _state(chain(0), dataset_id, wallet) == before

    response = client.post("/v1/grants/redeem", json=honest, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["owner"], body["owner_kind"]) == (wallet, "contract")
    assert "signer" not in body  # an EIP-1271 signature does not recover to the owner
    assert body["grant"]["status"] == "authorized"
    assert chain(0).is_authorized(dataset_id, LAB, AI)
    assert chain(0).nonces(wallet) == 1


def test_two_of_three_safe_redeems_with_its_130_byte_signature(
    client: TestClient, auth: dict[str, str], chain: Chain, settings: Any
) -> None:
    w3 = Web3(HTTPProvider(settings.rpc_url))
    deployer = dev_account(0)
    stack = deploy_safe_stack(w3, deployer)
    members = [dev_account(i) for i in (6, 8, 9)]
    safe = create_safe(w3, stack, deployer, [m.address for m in members], 2, salt=secrets.randbits(64))
    root = secrets.token_bytes(32)
    register = chain(0).abis["DatasetRegistry"].function("register", 3).encode_call([root, 0, "ipfs://safe"])
    registry = chain(0).deployment.address("DatasetRegistry")
    exec_transaction(w3, safe, members[:2], deployer, registry, bytes.fromhex(register[2:]))
    dataset_id = int.from_bytes(root, "big")
    typed = _typed(chain(0), dataset_id, safe.address)
    signature = safe_message_signature(w3, safe, [m.address for m in members[:2]], grant_digest(typed))
    assert len(signature) == 130
    document = dict(typed, signature="0x" + signature.hex())
    document["domain"] = dict(typed["domain"], chainId="0x7a69")

    one_of_two = dict(document, signature="0x" + signature[:65].hex())
    before = _state(chain(0), dataset_id, safe.address)
    error = _refused(
        client.post("/v1/grants/redeem", json=one_of_two, headers=auth), 422, "usage_grants_invalid_signature"
    )
    assert f"the signature is not that of {safe.address}" in error["message"]
    assert _state(chain(0), dataset_id, safe.address) == before

    response = client.post("/v1/grants/redeem", json=document, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["owner"], body["owner_kind"]) == (safe.address, "contract")
    assert "signer" not in body
    assert chain(0).is_authorized(dataset_id, LAB, AI)


def test_signature_from_before_a_revocation_is_refused_409_and_changes_nothing(
    client: TestClient, auth: dict[str, str], chain: Chain
) -> None:
    owner = dev_account(1)
    dataset_id = _register(chain, 1)
    first = sign_grant(owner, _typed(chain(0), dataset_id, owner.address))
    assert client.post("/v1/grants/redeem", json=first, headers=auth).status_code == 201
    # The lab asks for (and keeps) a second signature, a longer window for the same key...
    kept = sign_grant(owner, _typed(chain(0), dataset_id, owner.address, expires_at=FAR + 7))
    # ...then the hospital revokes the grant.
    chain(1).revoke_grant(dataset_id, LAB, AI)
    revoked_state = _state(chain(0), dataset_id, owner.address)

    def refused_kept() -> None:
        error = _refused(
            client.post("/v1/grants/redeem", json=kept, headers=auth), 409, "usage_grants_revocation_final"
        )
        assert error["message"].startswith(
            f"redeem signed grant: the grant of dataset 0x{dataset_id:064x} to {LAB} for "
        ), error
        assert (
            "was revoked or renounced since the deed's last transfer, and a revocation cannot be undone "
            "by a signature; the owner can issue it directly with `sov grant issue`" in error["message"]
        )
        assert error["message"].endswith("]") and "[UsageGrantsRevocationFinal(" in error["message"]
        assert error["details"]["revert"] == "UsageGrantsRevocationFinal"
        assert error["details"]["args"]["datasetId"] == str(dataset_id)
        assert to_checksum_address(error["details"]["args"]["grantee"]) == LAB

    refused_kept()
    assert _state(chain(0), dataset_id, owner.address) == revoked_state
    check = client.get(
        "/v1/grants/check", params={"dataset_id": str(dataset_id), "grantee": LAB, "purpose": AI}
    )
    assert check.json()["authorized"] is False
    assert check.json()["grant"]["revoked"] is True

    # The owner may re-issue directly; the kept signature still neither re-creates nor overwrites it.
    chain(1).issue_grant(dataset_id, LAB, AI, 0, FAR + 1)
    reissued = _state(chain(0), dataset_id, owner.address)
    refused_kept()
    assert _state(chain(0), dataset_id, owner.address) == reissued
    assert chain(0).get_grant(dataset_id, LAB, AI).expires_at == FAR + 1


@pytest.mark.parametrize("how", ["cancelled", "replayed"])
def test_cancelled_or_used_nonce_is_refused_409_and_changes_nothing(
    client: TestClient, auth: dict[str, str], chain: Chain, how: str
) -> None:
    owner = dev_account(3)
    dataset_id = _register(chain, 3)
    nonce = chain(0).nonces(owner.address)
    signed = sign_grant(owner, _typed(chain(0), dataset_id, owner.address))
    if how == "cancelled":
        next_nonce, _ = chain(3).invalidate_nonces()
    else:
        assert client.post("/v1/grants/redeem", json=signed, headers=auth).status_code == 201
        next_nonce = chain(0).nonces(owner.address)
    assert next_nonce == nonce + 1
    before = _state(chain(0), dataset_id, owner.address)
    error = _refused(
        client.post("/v1/grants/redeem", json=signed, headers=auth), 409, "usage_grants_invalid_nonce"
    )
    assert error["message"].startswith(
        f"redeem signed grant: the signed grant carries nonce {nonce} but {owner.address}'s next nonce "
        f"is {next_nonce} (already redeemed, cancelled by the owner, or signed out of order)"
    ), error
    assert error["details"]["revert"] == "UsageGrantsInvalidNonce"
    assert _state(chain(0), dataset_id, owner.address) == before
    assert chain(0).is_authorized(dataset_id, LAB, AI) is (how == "replayed")
