"""Sign-in with Ethereum and access tokens against a real devnet: issue, use, revoke, refuse.

Every consumer is a fresh key (no funds needed to sign in), so its live grants are exactly the
ones its test issued. Each refusal asserts the typed code and message, and that nothing changed:
a refused sign-in leaves its nonce usable for the genuine message, a refused read the chain as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.auth import ApiSettings
from api.siwe import SiweMessage, parse_message, sign_message
from ledger.chain.client import AuthorizationStatus, LedgerClient
from ledger.settings import Settings

FAR = 2**40
SECRET = "s" * 40


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _message(client: TestClient, account: LocalAccount, **overrides: Any) -> SiweMessage:
    offer = client.get("/v1/auth/nonce")
    assert offer.status_code == 200, offer.text
    fields: dict[str, Any] = {
        "domain": offer.json()["domain"],
        "address": account.address,
        "uri": offer.json()["uri"],
        "chain_id": offer.json()["chain_id"],
        "nonce": offer.json()["nonce"],
        "issued_at": _iso(time.time()),
        "statement": "Sign in to read the datasets I hold grants for.",
    }
    fields.update(overrides)
    return SiweMessage(**fields)


def _sign_in(
    client: TestClient, account: LocalAccount, text: str, signature: str | None = None, **extra: str
) -> Any:
    return client.post(
        "/v1/auth/siwe",
        json={
            "message": text,
            "signature": signature or sign_message(account, text),
            "client_id": "lab-tests",
            **extra,
        },
    )


def _token(client: TestClient, account: LocalAccount) -> dict[str, Any]:
    response = _sign_in(client, account, _message(client, account).to_text())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _grant(
    client: TestClient, auth: dict[str, str], dataset_id: object, grantee: str, expires_at: int = FAR
) -> None:
    body = {"dataset_id": dataset_id, "grantee": grantee, "purpose": "ai-training", "expires_at": expires_at}
    response = client.post("/v1/grants", json=body, headers=auth)
    assert response.status_code == 201, response.text


def _introspect(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post("/v1/auth/introspect", data={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _read(client: TestClient, dataset_id: object, token: str | None, **params: str) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.get(f"/v1/datasets/{dataset_id}/access", headers=headers, params=params)


def _refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert '"access_token":' not in response.text  # no token was issued
    return error


@pytest.fixture
def consumer() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def test_token_carries_the_rfc9068_claims_and_opens_the_read(
    client: TestClient, auth: dict[str, str], registered: dict[str, object], consumer: LocalAccount
) -> None:
    ds = registered["dataset_id"]
    _grant(client, auth, ds, consumer.address)
    body = _token(client, consumer)
    item = f"ai-training:0x{int(str(ds)):064x}"
    assert body["scope"] == item and body["sub"] == consumer.address and body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900

    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    keys = client.get("/v1/auth/jwks").json()["keys"]
    assert (
        header["typ"] == "at+jwt" and header["alg"] == "ES256" and [k["kid"] for k in keys] == [header["kid"]]
    )
    claims = jwt.decode(
        token,
        jwt.PyJWK(keys[0]).key,
        algorithms=["ES256"],
        audience="http://testserver",
        issuer="http://testserver",
    )
    assert claims["sub"] == consumer.address and claims["client_id"] == "lab-tests"
    assert claims["scope"] == item and claims["chain_id"] == 31337
    assert claims["exp"] - claims["iat"] == 900 and len(claims["jti"]) == 32
    assert [g["dataset_id"] for g in claims["grants"]] == [f"0x{int(str(ds)):064x}"]

    read = _read(client, ds, token)
    assert read.status_code == 200, read.text
    assert read.json()["uri"] == "ipfs://hospital-a" and read.json()["subject"] == consumer.address
    assert [g["status"] for g in read.json()["grants"]] == ["authorized"]
    assert _read(client, ds, token, purpose="ai-training").status_code == 200

    active = _introspect(client, token)
    assert active["active"] is True and active["scope"] == item and active["sub"] == consumer.address
    assert active["exp"] == claims["exp"] and active["client_id"] == "lab-tests"


def test_a_revocation_makes_the_token_inactive_and_the_read_refused(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    consumer: LocalAccount,
    chain: Callable[[int], LedgerClient],
) -> None:
    ds = registered["dataset_id"]
    _grant(client, auth, ds, consumer.address)
    token = _token(client, consumer)["access_token"]
    assert _read(client, ds, token).status_code == 200
    assert _introspect(client, token)["active"] is True

    revoked = client.post(
        "/v1/grants/revoke",
        json={"dataset_id": ds, "grantee": consumer.address, "purpose": "ai-training"},
        headers=auth,
    )
    assert revoked.status_code == 200, revoked.text
    assert _introspect(client, token) == {"active": False}
    head = chain(0).latest_block().number
    refused = _read(client, ds, token)
    error = _refused(refused, 401, "token_inactive")
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="sovereign-ledger", error="invalid_token", error_description="token_inactive"'
    )
    assert error["details"]["reason"] == "grant_revoked"
    assert error["message"] == (
        f"the access token is no longer active: its grant ai-training:0x{int(str(ds)):064x} is revoked "
        "on chain; sign in again"
    )
    # The refusal wrote nothing and the grant stays revoked.
    assert chain(0).latest_block().number == head
    assert (
        chain(0).authorization_status(int(str(ds)), consumer.address, "ai-training")
        is AuthorizationStatus.REVOKED
    )

    # Re-issued with the very same window: the token from before the revocation stays dead,
    # while a new sign-in is covered again.
    _grant(client, auth, ds, consumer.address)
    assert _introspect(client, token) == {"active": False}
    assert _refused(_read(client, ds, token), 401, "token_inactive")["details"]["reason"] == "grant_revoked"
    fresh = _token(client, consumer)["access_token"]
    assert _read(client, ds, fresh).status_code == 200


def test_a_changed_grant_or_a_retired_dataset_ends_the_token(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    new_root: Callable[[], str],
    consumer: LocalAccount,
    chain: Callable[[int], LedgerClient],
) -> None:
    ds = registered["dataset_id"]
    _grant(client, auth, ds, consumer.address)
    token = _token(client, consumer)["access_token"]
    _grant(client, auth, ds, consumer.address, expires_at=FAR - 1)  # re-issued with another window
    assert _introspect(client, token) == {"active": False}
    error = _refused(_read(client, ds, token), 401, "token_inactive")
    assert error["details"]["reason"] == "grant_changed"
    assert "is changed on chain; sign in again" in error["message"]

    fresh = _token(client, consumer)["access_token"]
    assert _read(client, ds, fresh).status_code == 200
    chain(0).retire_dataset(int(str(ds)))
    error = _refused(_read(client, ds, fresh), 401, "token_inactive")
    assert error["details"]["reason"] == "dataset_retired"
    assert _introspect(client, fresh) == {"active": False}
    assert _token(client, consumer)["scope"] == ""

    moved = client.post("/v1/datasets", json={"content_root": new_root(), "uri": "ipfs://c"}, headers=auth)
    moved_id = moved.json()["dataset"]["dataset_id"]
    _grant(client, auth, moved_id, consumer.address)
    token = _token(client, consumer)["access_token"]
    chain(0).transfer_dataset(int(str(moved_id)), str(Account.create().address))
    error = _refused(_read(client, moved_id, token), 401, "token_inactive")
    assert error["details"]["reason"] == "owner_changed"


def test_a_requested_scope_narrows_the_token_and_too_many_grants_are_refused(
    client: TestClient,
    consumer: LocalAccount,
    chain: Callable[[int], LedgerClient],
) -> None:
    import secrets

    from api.access_tokens import MAX_TOKEN_GRANTS

    owner = chain(0)
    ids = []
    for _ in range(MAX_TOKEN_GRANTS + 1):
        dataset_id, _ = owner.register_dataset(secrets.token_bytes(32))
        owner.issue_grant(dataset_id, consumer.address, "ai-training", 0, FAR)
        ids.append(dataset_id)
    text = _message(client, consumer).to_text()
    error = _refused(_sign_in(client, consumer, text), 422, "scope_too_broad")
    assert error["message"] == (
        f"this address holds {MAX_TOKEN_GRANTS + 1} live grants; a token carries at most "
        f"{MAX_TOKEN_GRANTS}: ask for a narrower `scope` ('<purpose>:<dataset id>' or '<dataset id>' items)"
    )
    # Refused after the signature checked out, yet the nonce is not spent.
    wanted = f"ai-training:0x{ids[0]:064x} 0x{ids[1]:064x} analytics:0x{ids[2]:064x}"
    narrowed = _sign_in(client, consumer, text, scope=wanted)
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == " ".join(f"ai-training:0x{i:064x}" for i in sorted(ids[:2]))
    token = narrowed.json()["access_token"]
    assert _read(client, ids[0], token).status_code == 200
    assert _refused(_read(client, ids[2], token), 403, "insufficient_scope")

    every = " ".join(f"0x{i:064x}" for i in ids[:MAX_TOKEN_GRANTS])
    full = _sign_in(client, consumer, _message(client, consumer).to_text(), scope=every)
    assert full.status_code == 200 and len(full.json()["grants"]) == MAX_TOKEN_GRANTS
    assert len(full.json()["access_token"]) < 14_000  # fits uvicorn's 16 KiB header limit

    bad = _sign_in(client, consumer, _message(client, consumer).to_text(), scope="ai-training:nope")
    error = _refused(bad, 422, "invalid_request")
    assert error["message"].startswith("scope: item 'ai-training:nope' is not '<purpose>:<dataset id>'")


def test_a_replayed_sign_in_is_refused(client: TestClient, consumer: LocalAccount) -> None:
    text = _message(client, consumer).to_text()
    signature = sign_message(consumer, text)
    assert _sign_in(client, consumer, text, signature).status_code == 200
    error = _refused(_sign_in(client, consumer, text, signature), 401, "siwe_nonce_replayed")
    nonce = parse_message(text).nonce
    assert error["message"] == (
        f"nonce {nonce} was already used to sign in; ask GET /v1/auth/nonce for a new one"
    )
    unknown = _message(client, consumer, nonce="a" * 32).to_text()
    error = _refused(_sign_in(client, consumer, unknown), 401, "siwe_nonce_unknown")
    assert error["message"].startswith(f"nonce {'a' * 32} was not issued by this service or has expired")


def test_tampered_signatures_and_messages_are_refused_and_spend_nothing(
    client: TestClient, consumer: LocalAccount
) -> None:
    message = _message(client, consumer)
    text = message.to_text()
    signature = sign_message(consumer, text)

    flipped = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
    error = _refused(_sign_in(client, consumer, text, flipped), 401, "siwe_bad_signature")
    assert error["message"].startswith("the signature is")

    bad_v = signature[:-2] + "05"
    error = _refused(_sign_in(client, consumer, text, bad_v), 401, "siwe_bad_signature")
    assert error["message"].startswith("the signature is not valid: the signature does not recover a key")

    other = Account.create()
    forged = SiweMessage(**{**message.__dict__, "address": other.address}).to_text()
    error = _refused(_sign_in(client, consumer, forged, signature), 401, "siwe_bad_signature")
    assert error["message"].endswith(f"not by the message's address {other.address}")
    edited = text.replace("I hold grants for", "I own")
    error = _refused(_sign_in(client, consumer, edited, signature), 401, "siwe_bad_signature")
    assert error["details"]["address"] == consumer.address and error["details"]["signer"] != consumer.address

    # None of that spent the nonce: the genuine message signs in with it.
    assert _sign_in(client, consumer, text, signature).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"chain_id": 1}, "siwe_chain_mismatch", "the message is for chain 1; this service's chain is 31337"),
        (
            {"domain": "evil.example"},
            "siwe_domain_mismatch",
            "the message signs in to 'evil.example', not to this service ('testserver')",
        ),
        (
            {"scheme": "https"},
            "siwe_domain_mismatch",
            "the message names scheme 'https'; this service is 'http'",
        ),
        (
            {"uri": "https://evil.example/login"},
            "siwe_uri_mismatch",
            "URI https://evil.example/login is not on this service (http://testserver)",
        ),
        ({"expiration_time": _iso(time.time() - 5)}, "siwe_expired", "the message expired at "),
        ({"not_before": _iso(time.time() + 600)}, "siwe_not_yet_valid", "the message is valid from "),
        ({"issued_at": _iso(time.time() + 600)}, "siwe_issued_in_future", "Issued At "),
    ],
)
def test_a_message_for_another_chain_domain_or_time_is_refused(
    client: TestClient, consumer: LocalAccount, overrides: dict[str, Any], code: str, message: str
) -> None:
    if "expiration_time" in overrides:
        overrides = {**overrides, "expiration_time": _iso(time.time() - 5)}
    bad = _message(client, consumer, **overrides)
    error = _refused(_sign_in(client, consumer, bad.to_text()), 401, code)
    assert error["message"].startswith(message), error["message"]
    # The nonce is still open: the right message with it is accepted.
    good = SiweMessage(
        **{**bad.__dict__, **_message(client, consumer).__dict__, "nonce": bad.nonce, "statement": None}
    )
    assert _sign_in(client, consumer, good.to_text()).status_code == 200


def test_a_malformed_message_is_refused_with_the_line(client: TestClient, consumer: LocalAccount) -> None:
    text = _message(client, consumer).to_text()
    for broken, expected in [
        (text.replace(consumer.address, consumer.address.lower()), "line 2: address "),
        (text.replace("\n", "\r\n"), "the message has a CR character"),
        (text.replace("Version: 1", "Version: 2"), "line 7: Version '2' is not a valid version"),
        (text + "\n", "line 11: unexpected ''"),
        ("hello", "line 1: expected '<domain> wants you to sign in with your Ethereum account:'"),
    ]:
        error = _refused(_sign_in(client, consumer, broken), 422, "siwe_invalid_message")
        assert error["message"].startswith("not an EIP-4361 message: " + expected), error["message"]
    assert _sign_in(client, consumer, text).status_code == 200


def test_an_address_without_grants_gets_an_empty_scope_and_no_read(
    client: TestClient, registered: dict[str, object], consumer: LocalAccount
) -> None:
    body = _token(client, consumer)
    assert body["scope"] == "" and body["grants"] == [] and body["expires_in"] == 900
    assert _introspect(client, body["access_token"])["scope"] == ""
    ds = registered["dataset_id"]
    refused = _read(client, ds, body["access_token"])
    error = _refused(refused, 403, "insufficient_scope")
    assert refused.headers["www-authenticate"] == (
        f'Bearer realm="sovereign-ledger", error="insufficient_scope", scope="0x{int(str(ds)):064x}"'
    )
    assert error["message"] == (
        f"the access token's scope does not cover 0x{int(str(ds)):064x} (scope: empty, no live grants); "
        "ask the dataset's owner for a grant, then sign in again"
    )
    refused = _read(client, ds, None)
    error = _refused(refused, 401, "token_missing")
    assert refused.headers["www-authenticate"] == 'Bearer realm="sovereign-ledger"'
    assert error["message"].startswith("this read needs an access token")


def test_a_token_outside_its_scope_purpose_is_refused(
    client: TestClient, auth: dict[str, str], registered: dict[str, object], consumer: LocalAccount
) -> None:
    ds = registered["dataset_id"]
    _grant(client, auth, ds, consumer.address)
    token = _token(client, consumer)["access_token"]
    error = _refused(_read(client, ds, token, purpose="analytics"), 403, "insufficient_scope")
    assert f"does not cover analytics:0x{int(str(ds)):064x}" in error["message"]


def test_forged_expired_and_foreign_tokens_are_refused(
    settings: Settings,
    api_settings: ApiSettings,
    auth: dict[str, str],
    registered: dict[str, object],
    consumer: LocalAccount,
) -> None:
    hs256 = api_settings.model_copy(update={"access_token_secret": SecretStr(SECRET)})
    with TestClient(create_app(settings, hs256), raise_server_exceptions=False) as client:
        ds = registered["dataset_id"]
        _grant(client, auth, ds, consumer.address)
        token = _token(client, consumer)["access_token"]
        assert client.get("/v1/auth/jwks").json() == {"keys": []}
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "HS256" and header["typ"] == "at+jwt"
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="http://testserver")
        assert _read(client, ds, token).status_code == 200

        def forge(secret: str = SECRET, headers: dict[str, str] | None = None, **changes: Any) -> str:
            return jwt.encode(
                {**claims, **changes},
                secret,
                algorithm="HS256",
                headers=headers or {"typ": "at+jwt", "kid": header["kid"]},
            )

        now = int(time.time())
        cases = [
            (
                forge(exp=now - 10, iat=now - 100, nbf=now - 100),
                "token_expired",
                "the access token has expired",
            ),
            (forge(aud="https://other.example"), "token_wrong_audience", "the access token is not meant for"),
            (forge(iss="https://other.example"), "token_wrong_issuer", "the access token was not issued by"),
            (forge("t" * 40), "token_bad_signature", "the access token's signature does not verify"),
            (
                forge(headers={"typ": "JWT", "kid": header["kid"]}),
                "token_invalid",
                "the token's typ is 'JWT'",
            ),
            (
                forge(headers={"typ": "at+jwt", "kid": "other"}),
                "token_invalid",
                "the token is signed with key 'other'",
            ),
            ("not-a-jwt", "token_invalid", "the bearer token is not a JWT"),
        ]
        for forged, code, message in cases:
            error = _refused(_read(client, ds, forged), 401, code)
            assert error["message"].startswith(message), error["message"]
            assert _introspect(client, forged) == {"active": False}
        # The forgeries did not touch the genuine token.
        assert _introspect(client, token)["active"] is True


def test_introspection_takes_a_form_with_one_token(client: TestClient) -> None:
    missing = client.post("/v1/auth/introspect", data={"token_type_hint": "access_token"})
    error = _refused(missing, 422, "invalid_request")
    assert error["message"] == "token: the form must carry exactly one non-empty `token` field"
    as_json = client.post("/v1/auth/introspect", json={"token": "x"})
    error = _refused(as_json, 415, "unsupported_media_type")
    assert error["message"] == (
        "introspection takes a form (application/x-www-form-urlencoded, RFC 7662), not application/json"
    )


def test_closed_reads_open_to_an_active_access_token_with_a_grant(
    settings: Settings,
    api_settings: ApiSettings,
    auth: dict[str, str],
    registered: dict[str, object],
    consumer: LocalAccount,
) -> None:
    closed = api_settings.model_copy(update={"reads_require_token": True})
    with TestClient(create_app(settings, closed), raise_server_exceptions=False) as client:
        ds = registered["dataset_id"]
        error = _refused(client.get("/v1/datasets"), 401, "unauthorized")
        assert error["message"] == "missing bearer token: send 'Authorization: Bearer <token>'"
        assert client.get("/v1/datasets", headers=auth).status_code == 200

        empty = _token(client, Account.create())["access_token"]
        error = _refused(
            client.get("/v1/datasets", headers={"Authorization": f"Bearer {empty}"}),
            403,
            "insufficient_scope",
        )
        assert error["message"].startswith("the access token covers no grant (scope empty)")

        _grant(client, auth, ds, consumer.address)
        token = _token(client, consumer)["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        listed = client.get("/v1/grants", params={"grantee": consumer.address}, headers=bearer)
        assert listed.status_code == 200 and [g["dataset_id"] for g in listed.json()["items"]] == [ds]
        # An access token opens reads, never writes.
        write = client.post("/v1/datasets", json={"content_root": "0x" + "ab" * 32}, headers=bearer)
        assert (
            _refused(write, 401, "unauthorized")["message"] == "the bearer token is not this service's token"
        )

        revoked = client.post(
            "/v1/grants/revoke",
            json={"dataset_id": ds, "grantee": consumer.address, "purpose": "ai-training"},
            headers=auth,
        )
        assert revoked.status_code == 200, revoked.text
        error = _refused(client.get("/v1/datasets", headers=bearer), 401, "token_inactive")
        assert error["details"]["reason"] == "grant_revoked"
        error = _refused(
            client.get("/v1/datasets", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized"
        )
        assert error["message"] == "the bearer token is not this service's token"


def _deploy_wallet(settings: Settings, name: str, *args: object) -> str:
    from web3 import Web3

    from ledger.chain.abi import load_artifact
    from ledger.keys import dev_account
    from tests.contracts.safe_wallet import send

    w3 = Web3(Web3.HTTPProvider(settings.rpc_url))
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    address = send(w3, dev_account(0), factory.constructor(*args))["contractAddress"]
    assert address is not None
    return str(Web3.to_checksum_address(address))


def test_a_contract_wallet_signs_in_through_eip1271(
    client: TestClient,
    settings: Settings,
    auth: dict[str, str],
    registered: dict[str, object],
    consumer: LocalAccount,
) -> None:
    wallet = _deploy_wallet(settings, "MockSignerWallet", consumer.address)
    ds = registered["dataset_id"]
    _grant(client, auth, ds, wallet)
    offer = _message(client, consumer)
    text = SiweMessage(**{**offer.__dict__, "address": wallet}).to_text()
    # The wallet's signer signs; the message names the wallet, which vouches for it on chain.
    signed_in = _sign_in(client, consumer, text)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["sub"] == wallet
    assert signed_in.json()["scope"] == f"ai-training:0x{int(str(ds)):064x}"
    assert _read(client, ds, signed_in.json()["access_token"]).status_code == 200

    rejecting = _deploy_wallet(settings, "MockRejectingWallet")
    offer = _message(client, consumer)
    text = SiweMessage(**{**offer.__dict__, "address": rejecting}).to_text()
    error = _refused(_sign_in(client, consumer, text), 401, "siwe_bad_signature")
    assert error["message"] == f"the contract wallet {rejecting} does not accept this signature (EIP-1271)"
    # Refused without spending the nonce: the same nonce still signs the consumer itself in.
    own = SiweMessage(**{**offer.__dict__, "address": consumer.address}).to_text()
    assert _sign_in(client, consumer, own).status_code == 200


def test_exp_is_bounded_by_the_earliest_grant_and_chain_expiry_ends_the_token(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    new_root: Callable[[], str],
    consumer: LocalAccount,
    chain: Callable[[int], LedgerClient],
) -> None:
    # Runs last in this module: it moves the devnet's clock forward.
    far = registered["dataset_id"]
    near = client.post("/v1/datasets", json={"content_root": new_root(), "uri": "ipfs://b"}, headers=auth)
    assert near.status_code == 201, near.text
    soon = max(int(time.time()), chain(0).latest_block().timestamp) + 120
    _grant(client, auth, far, consumer.address)
    _grant(client, auth, near.json()["dataset"]["dataset_id"], consumer.address, expires_at=soon)
    body = _token(client, consumer)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] == soon == body["expires_at"] and claims["exp"] - claims["iat"] < 900
    assert len(body["scope"].split(" ")) == 2
    assert _read(client, far, body["access_token"]).status_code == 200

    transport = chain(0).transport
    transport.request("evm_increaseTime", [200])
    transport.request("evm_mine", [])
    # The JWT has not expired by the clock, but the chain says the near grant has: inactive.
    assert claims["exp"] > time.time()
    assert _introspect(client, body["access_token"]) == {"active": False}
    error = _refused(_read(client, far, body["access_token"]), 401, "token_inactive")
    assert error["details"]["reason"] == "grant_expired"
    # Signing in again leaves the expired grant out and keeps the other.
    again = _token(client, consumer)
    assert again["scope"] == f"ai-training:0x{int(str(far)):064x}"
