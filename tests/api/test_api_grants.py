"""`/v1/grants` against a real devnet: issue, redeem, revoke, check, list, and their failures."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable

import pytest
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.auth import ApiSettings
from ledger.chain.client import AuthorizationStatus, LedgerClient
from ledger.chain.types import GrantTerms
from ledger.keys import dev_account
from ledger.settings import Settings
from ledger.signed_grants import grant_typed_data, sign_grant

DEV0 = str(dev_account(0).address)
DEV1 = str(dev_account(1).address)
DEV2 = str(dev_account(2).address)
FAR = 2**40  # far-future expiry


def _issue(
    client: TestClient, auth: dict[str, str], dataset_id: object, grantee: str = DEV2, **extra: object
):  # type: ignore[no-untyped-def]
    body = {
        "dataset_id": dataset_id,
        "grantee": grantee,
        "purpose": "ai-training",
        "expires_at": FAR,
        **extra,
    }
    return client.post("/v1/grants", json=body, headers=auth)


def test_issue_check_list_revoke(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    ds = registered["dataset_id"]
    issued = _issue(client, auth, ds)
    assert issued.status_code == 201, issued.text
    grant = issued.json()["grant"]
    assert (
        grant["status"] == "authorized" and grant["expires_at"] == FAR and grant["purpose"] == "ai-training"
    )

    check = client.get(
        "/v1/grants/check", params={"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training"}
    )
    assert check.status_code == 200
    assert check.json()["authorized"] is True
    assert check.json()["reason"] == "the grant is valid now"
    assert check.json()["grant"]["expires_at"] == FAR

    listed = client.get("/v1/grants", params={"owner": DEV0, "grantee": DEV2}).json()
    assert [(g["dataset_id"], g["status"]) for g in listed["items"] if g["dataset_id"] == ds] == [
        (ds, "authorized")
    ]

    revoked = client.post(
        "/v1/grants/revoke", json={"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training"}, headers=auth
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["grant"]["revoked"] is True
    after = client.get(
        "/v1/grants/check", params={"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training"}
    ).json()
    assert after["authorized"] is False
    assert after["reason"] == "the grant was revoked by the owner or renounced by the grantee"
    assert chain(0).authorization_status(int(str(ds)), DEV2, "ai-training") is AuthorizationStatus.REVOKED
    listed = client.get("/v1/grants", params={"dataset_id": ds}).json()
    assert [g["status"] for g in listed["items"]] == ["revoked"]


def test_check_without_grant(client: TestClient, registered: dict[str, object]) -> None:
    body = client.get(
        "/v1/grants/check",
        params={"dataset_id": registered["dataset_id"], "grantee": DEV1, "purpose": "analytics"},
    ).json()
    assert body["authorized"] is False
    assert body["reason"] == "no grant exists for this dataset, grantee and purpose"
    assert body["grant"] is None


def test_expiry_in_the_past_is_422_and_no_grant(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    now = chain(0).latest_block().timestamp
    response = _issue(client, auth, registered["dataset_id"], expires_at=now - 10)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        f"expires_at {now - 10} is in the past (chain time is {now}); give a later time"
    )
    assert not chain(0).get_grant(int(str(registered["dataset_id"])), DEV2, "ai-training").exists


def test_empty_window_is_422(client: TestClient, auth: dict[str, str], registered: dict[str, object]) -> None:
    response = _issue(client, auth, registered["dataset_id"], not_before=FAR, expires_at=FAR - 1)
    assert response.status_code == 422
    assert (
        f"expires_at {FAR - 1} is before not_before {FAR}: the window is empty"
        == response.json()["error"]["message"]
    )


def test_grant_on_someone_elses_dataset_is_403(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
) -> None:
    dataset_id, _ = chain(1).register_dataset(bytes.fromhex(new_root()[2:]))
    response = _issue(client, auth, str(dataset_id))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["details"]["revert"] == "UsageGrantsNotOwnerOrOperator"
    assert error["details"]["args"]["caller"] == DEV0
    assert error["details"]["args"]["owner"] == DEV1
    assert not chain(0).get_grant(dataset_id, DEV2, "ai-training").exists


def test_grant_on_unknown_dataset_is_404(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    root = new_root()
    response = _issue(client, auth, root)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"dataset {root} is not registered"


def test_bad_grant_inputs_are_422(
    client: TestClient, auth: dict[str, str], registered: dict[str, object]
) -> None:
    ds = registered["dataset_id"]
    mixed = DEV2[:2] + DEV2[2:].swapcase()
    cases = [
        ({"grantee": mixed}, "grantee", f"fails its EIP-55 checksum (mixed case); did you mean {DEV2}?"),
        ({"grantee": "0x1234"}, "grantee", "is not an address"),
        ({"purpose": "ai-trainin"}, "purpose", "unknown purpose 'ai-trainin' (did you mean 'ai-training'?)"),
        ({"expires_at": 2**64}, "expires_at", "less than or equal to 18446744073709551615"),
        ({"expires_at": "soon"}, "expires_at", "Input should be a valid integer"),
        ({"dataset_id": "-5"}, "dataset_id", "is not a valid dataset id"),
    ]
    for extra, field, fragment in cases:
        body = {"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training", "expires_at": FAR, **extra}
        response = client.post("/v1/grants", json=body, headers=auth)
        assert response.status_code == 422, (extra, response.text)
        error = response.json()["error"]
        assert fragment in error["message"], (extra, error["message"])
        assert [f["field"] for f in error["details"]["fields"]] == [field]
    listed = client.get("/v1/grants", params={"dataset_id": ds}).json()
    assert listed["total"] == 0


def test_revoke_needs_token_and_leaves_grant(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    ds = registered["dataset_id"]
    assert _issue(client, auth, ds).status_code == 201
    response = client.post(
        "/v1/grants/revoke", json={"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert chain(0).is_authorized(int(str(ds)), DEV2, "ai-training")


def test_revoke_missing_grant_is_404(
    client: TestClient, auth: dict[str, str], registered: dict[str, object]
) -> None:
    response = client.post(
        "/v1/grants/revoke",
        json={"dataset_id": registered["dataset_id"], "grantee": DEV1, "purpose": "analytics"},
        headers=auth,
    )
    assert response.status_code in (403, 404), response.text
    assert response.json()["error"]["details"]["revert"] == "UsageGrantsNoGrant"


def _signed_grant(
    chain: LedgerClient, owner_index: int, dataset_id: int, deadline: int, nonce: int | None = None
) -> dict[str, object]:
    owner = dev_account(owner_index)
    typed = grant_typed_data(
        chain.chain_id,
        chain.deployment.address("UsageGrants"),
        dataset_id,
        DEV2,
        "data-mining",
        0,
        FAR,
        chain.nonces(str(owner.address)) if nonce is None else nonce,
        deadline,
    )
    return sign_grant(owner, typed)


def test_redeem_owner_signed_grant_then_replay_fails(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
) -> None:
    owner_chain = chain(1)
    dataset_id, _ = owner_chain.register_dataset(bytes.fromhex(new_root()[2:]))
    signed = _signed_grant(owner_chain, 1, dataset_id, FAR)
    response = client.post("/v1/grants/redeem", json=signed, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["grant"]["status"] == "authorized"
    assert owner_chain.is_authorized(dataset_id, DEV2, "data-mining")

    assert response.json()["owner"] == response.json()["signer"] == DEV1
    assert response.json()["owner_kind"] == "account"

    replay = client.post("/v1/grants/redeem", json=signed, headers=auth)
    assert replay.status_code == 409  # the signature is genuine; its nonce is used
    assert replay.json()["error"]["details"]["revert"] == "UsageGrantsInvalidNonce"
    assert owner_chain.nonces(DEV1) == 1


def test_redeem_rejects_wrong_domain_and_past_deadline(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
) -> None:
    owner_chain = chain(3)
    dataset_id, _ = owner_chain.register_dataset(bytes.fromhex(new_root()[2:]))
    now = owner_chain.latest_block().timestamp
    late = _signed_grant(owner_chain, 3, dataset_id, now - 1)
    response = client.post("/v1/grants/redeem", json=late, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        f"message.deadline {now - 1} is in the past (chain time is {now}); ask the owner to sign again"
    )
    other_chain = _signed_grant(owner_chain, 3, dataset_id, FAR)
    other_chain["domain"]["chainId"] = 1  # type: ignore[index]
    response = client.post("/v1/grants/redeem", json=other_chain, headers=auth)
    assert response.status_code == 422
    assert "domain.chainId 1 is not this chain (31337)" in response.json()["error"]["message"]
    assert not owner_chain.get_grant(dataset_id, DEV2, "data-mining").exists
    assert owner_chain.nonces(str(dev_account(3).address)) == 0


def test_reads_can_require_the_token(settings: Settings, registered: dict[str, object]) -> None:
    token = secrets.token_hex(8)
    closed = create_app(settings, ApiSettings(token=SecretStr(token), reads_require_token=True))
    with TestClient(closed) as client:
        params = {"dataset_id": registered["dataset_id"], "grantee": DEV2, "purpose": "ai-training"}
        refused = client.get("/v1/grants/check", params=params)
        assert refused.status_code == 401
        assert token not in refused.text
        allowed = client.get("/v1/grants/check", params=params, headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("service_settings", "message"),
    [
        (
            ApiSettings(account="dev0"),
            "this service has no SOV_API_TOKEN configured, so it accepts no writes",
        ),
        (
            ApiSettings(token=SecretStr("t0ken-value")),
            "this service has no operator account configured (set SOV_API_ACCOUNT to a keystore alias)",
        ),
    ],
)
def test_writes_disabled_without_token_or_account(
    settings: Settings,
    service_settings: ApiSettings,
    message: str,
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    with TestClient(create_app(settings, service_settings)) as client:
        body = {
            "dataset_id": registered["dataset_id"],
            "grantee": DEV1,
            "purpose": "ai-training",
            "expires_at": FAR,
        }
        response = client.post("/v1/grants", json=body, headers={"Authorization": "Bearer t0ken-value"})
        assert response.status_code == 403
        assert response.json()["error"]["message"] == message
    assert not chain(0).get_grant(int(str(registered["dataset_id"])), DEV1, "ai-training").exists


def test_issue_with_terms_check_shows_them(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    ds = registered["dataset_id"]
    terms = {"epsilon": 3, "delta": 1e-5, "min_participants": 3, "max_rounds": 50}
    issued = _issue(client, auth, ds, terms=terms)
    assert issued.status_code == 201, issued.text
    assert issued.json()["grant"]["terms"] == {**terms, "epsilon": 3.0}
    assert chain(0).get_grant(int(str(ds)), DEV2, "ai-training").terms == GrantTerms(3, 1e-5, 3, 50)
    check = client.get(
        "/v1/grants/check", params={"dataset_id": ds, "grantee": DEV2, "purpose": "ai-training"}
    ).json()
    assert check["grant"]["terms"] == {
        "epsilon": 3.0,
        "delta": 1e-05,
        "min_participants": 3,
        "max_rounds": 50,
    }
    # Without terms the re-issued grant has none.
    assert _issue(client, auth, ds).json()["grant"]["terms"] == {
        "epsilon": 0.0,
        "delta": 0.0,
        "min_participants": 0,
        "max_rounds": 0,
    }


@pytest.mark.parametrize(
    ("terms", "field", "message"),
    [
        ({"epsilon": 3, "delta": 2e-5}, "terms.delta", "delta 2e-05 is not a power of ten (stored as 10^-k)"),
        ({"epsilon": 3.001, "delta": 1e-5}, "terms.epsilon", "epsilon 3.001 has more than two decimals"),
        ({"epsilon": 3}, "terms.epsilon", "epsilon 3 and delta 0: set both for a DP budget, or neither"),
    ],
)
def test_terms_the_chain_cannot_store_are_422_naming_the_field(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
    terms: dict[str, float],
    field: str,
    message: str,
) -> None:
    dataset_id, _ = chain(0).register_dataset(bytes.fromhex(new_root()[2:]))
    sent = chain(0).transport.request("eth_getTransactionCount", [DEV0, "latest"])
    response = _issue(client, auth, dataset_id, terms=terms)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["fields"][0]["field"] == field
    assert message in error["message"], error["message"]
    assert chain(0).transport.request("eth_getTransactionCount", [DEV0, "latest"]) == sent
    assert not chain(0).get_grant(dataset_id, DEV2, "ai-training").exists


def test_redeem_with_terms_and_v1_refused(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
) -> None:
    owner_chain = chain(4)
    dataset_id, _ = owner_chain.register_dataset(bytes.fromhex(new_root()[2:]))
    owner = dev_account(4)
    typed = grant_typed_data(
        owner_chain.chain_id,
        owner_chain.deployment.address("UsageGrants"),
        dataset_id,
        DEV2,
        "data-mining",
        0,
        FAR,
        0,
        FAR,
        GrantTerms(8, 1e-6, 2, 20),
    )
    v1 = copy.deepcopy(typed)
    v1["domain"]["version"] = "1"
    v1["types"]["Grant"] = [f for f in v1["types"]["Grant"] if f["type"] not in ("uint8", "uint16")]
    for key in ("epsilonHundredths", "deltaNegExponent", "minParticipants", "maxRounds"):
        del v1["message"][key]
    v1_signature = owner.sign_message(encode_typed_data(full_message=v1)).signature
    v1_signed = dict(v1, signature="0x" + bytes(v1_signature).hex())
    refused = client.post("/v1/grants/redeem", json=v1_signed, headers=auth)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["details"]["fields"][0]["field"] == "domain.version"
    assert "signed for UsageGrants version 1" in error["message"]
    assert "the dataset owner must sign the grant again" in error["message"]
    assert not owner_chain.get_grant(dataset_id, DEV2, "data-mining").exists
    assert owner_chain.nonces(str(owner.address)) == 0

    response = client.post("/v1/grants/redeem", json=sign_grant(owner, typed), headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["grant"]["terms"] == {
        "epsilon": 8.0,
        "delta": 1e-06,
        "min_participants": 2,
        "max_rounds": 20,
    }
    assert owner_chain.get_grant(dataset_id, DEV2, "data-mining").terms == GrantTerms(8, 1e-6, 2, 20)


def test_grant_list_shows_each_grants_terms(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    with_terms, without = (
        client.post("/v1/datasets", json={"content_root": new_root()}, headers=auth).json()["dataset"][
            "dataset_id"
        ]
        for _ in range(2)
    )
    terms = {"epsilon": 3.0, "delta": 1e-05, "min_participants": 3, "max_rounds": 50}
    assert _issue(client, auth, with_terms, terms=terms).status_code == 201
    assert _issue(client, auth, without).status_code == 201
    listed = client.get("/v1/grants", params={"grantee": DEV2}).json()["items"]
    shown = {g["dataset_id"]: g["terms"] for g in listed if g["dataset_id"] in (with_terms, without)}
    # The same terms object `/v1/grants/check` gives: all zero = no terms.
    none = {"epsilon": 0.0, "delta": 0.0, "min_participants": 0, "max_rounds": 0}
    assert shown == {with_terms: terms, without: none}
    check = client.get(
        "/v1/grants/check", params={"dataset_id": with_terms, "grantee": DEV2, "purpose": "ai-training"}
    ).json()
    assert check["grant"]["terms"] == shown[with_terms]
