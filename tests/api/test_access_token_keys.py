"""How access tokens are signed (key file, secret, refused configurations) and how nonces age.

The service runs over the module's real devnet; keys are real PEM files made here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.access_tokens import NonceBook
from api.app import create_app
from api.auth import ApiSettings
from api.errors import ApiError
from api.siwe import SiweMessage, sign_message
from ledger.settings import Settings


def _pem(key: Any, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _sign_in(client: TestClient) -> Any:
    account = Account.create()
    offer = client.get("/v1/auth/nonce").json()
    text = SiweMessage(
        domain=offer["domain"],
        address=account.address,
        uri=offer["uri"],
        chain_id=offer["chain_id"],
        nonce=offer["nonce"],
        issued_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    ).to_text()
    return client.post("/v1/auth/siwe", json={"message": text, "signature": sign_message(account, text)})


@pytest.mark.parametrize(
    ("make_key", "algorithm", "kty"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", "EC"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA", "OKP"),
    ],
)
def test_a_key_file_signs_the_tokens_and_its_public_key_is_published(
    settings: Settings, api_settings: ApiSettings, tmp_path: Path, make_key: Any, algorithm: str, kty: str
) -> None:
    path = _pem(make_key(), tmp_path / "token-key.pem")
    configured = api_settings.model_copy(update={"access_token_key_file": path})
    for _ in range(2):  # a restart with the same file verifies the tokens of the previous process
        with TestClient(create_app(settings, configured), raise_server_exceptions=False) as client:
            keys = client.get("/v1/auth/jwks").json()["keys"]
            assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [(kty, algorithm, "sig")]
            response = _sign_in(client)
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]
            claims = jwt.decode(
                token, jwt.PyJWK(keys[0]).key, algorithms=[algorithm], audience="http://testserver"
            )
            assert claims["sub"] == response.json()["sub"]
            if _ == 0:
                first = token
            else:
                introspected = client.post("/v1/auth/introspect", data={"token": first}).json()
                assert introspected["active"] is True


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (
            {"access_token_secret": SecretStr("short")},
            "SOV_API_ACCESS_TOKEN_SECRET is 5 bytes; HS256 needs at least 32",
        ),
        (
            {"access_token_key_file": "missing.pem"},
            "SOV_API_ACCESS_TOKEN_KEY_FILE missing.pem is not a readable",
        ),
        ({"access_token_key_file": "rsa.pem"}, "SOV_API_ACCESS_TOKEN_KEY_FILE holds a "),
    ],
)
def test_an_unusable_key_refuses_sign_in_and_keeps_reads_open(
    settings: Settings,
    api_settings: ApiSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    update: dict[str, Any],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), tmp_path / "rsa.pem")
    if "access_token_key_file" in update:
        update = {"access_token_key_file": Path(update["access_token_key_file"])}
    broken = api_settings.model_copy(update=update)
    with TestClient(create_app(settings, broken), raise_server_exceptions=False) as client:
        for response in (client.get("/v1/auth/nonce"), client.get("/v1/auth/jwks")):
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "not_configured" and error["message"].startswith(message), error
            assert "short" not in response.text  # the secret is never echoed
        assert client.get("/v1/datasets").status_code == 200


def test_nonces_are_single_use_expire_and_are_bounded() -> None:
    book = NonceBook(ttl=1, capacity=2)
    first, until = book.issue()
    assert len(first) == 32 and first.isalnum() and until > time.time()
    book.issue()
    with pytest.raises(ApiError) as full:
        book.issue()
    assert (full.value.status, full.value.code) == (503, "nonce_capacity")
    assert full.value.message == "2 sign-in nonces are outstanding; try again in 1 s"
    book.check(first)
    assert book.is_open(first)  # checking spends nothing
    book.check(first, spend=True)
    with pytest.raises(ApiError) as replay:
        book.check(first)
    assert replay.value.code == "siwe_nonce_replayed"
    time.sleep(1.1)
    with pytest.raises(ApiError) as aged:
        book.check(first)  # spent and aged out: unknown now, still refused
    assert aged.value.code == "siwe_nonce_unknown"
    fresh, _ = book.issue()  # the aged ones made room
    assert book.is_open(fresh)
