"""Failure modes that are not about one route: unreachable chain, typed bodies for HTTP errors, health."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import ApiSettings
from ledger.devnet import free_port
from ledger.settings import Settings


def test_unreachable_chain_is_503_naming_the_url(tmp_path: Path, api_settings: ApiSettings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path / "home", rpc_url=url)
    with TestClient(create_app(settings, api_settings), raise_server_exceptions=False) as client:
        response = client.get(
            "/v1/grants/check",
            params={"dataset_id": "1", "grantee": "0x" + "11" * 20, "purpose": "analytics"},
        )
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "unreachable"
        assert url in error["message"]
        health = client.get("/v1/health")
        assert health.status_code == 503
        assert health.json()["ok"] is False
        assert health.json()["chain"]["url"] == url
        assert health.json()["chain"]["ok"] is False
        assert health.json()["content_store"]["ok"] is True
    # Nothing was written anywhere: not even an index file for a chain we never reached.
    assert not settings.index_path.exists()


def test_health_names_every_component(client: TestClient, settings: Settings) -> None:
    body = client.get("/v1/health").json()
    assert body["ok"] is True
    assert body["chain"]["url"] == settings.rpc_url
    assert body["index"]["url"] == f"file://{settings.index_path}"
    assert body["content_store"]["url"] == f"file://{settings.blockstore_dir}"
    assert body["chain_id"] == 31337
    assert body["writes_enabled"] is True
    assert "test-token" not in str(body)


def test_http_errors_use_the_typed_body(client: TestClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found", "details": {}}}
    wrong_method = client.delete("/v1/datasets")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_declared_oversized_body_refused_without_reading(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/v1/grants",
        content=b"{" + b" " * 65_600 + b"}",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "request body is 65602 bytes; this service accepts at most 65536 bytes"
    )


def test_openapi_documents_bearer_auth_and_versioned_paths(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert all(path.startswith("/v1/") for path in schema["paths"])


def test_settings_are_injected_and_overridable(client: TestClient) -> None:
    from pydantic import SecretStr

    from api.routes.deps import get_api_settings

    app = client.app
    assert isinstance(app, FastAPI)
    app.dependency_overrides[get_api_settings] = lambda: ApiSettings(
        token=SecretStr("override-token"), reads_require_token=True
    )
    try:
        closed = client.get("/v1/datasets")
        assert closed.status_code == 401
        assert (
            closed.json()["error"]["message"] == "missing bearer token: send 'Authorization: Bearer <token>'"
        )
        opened = client.get("/v1/datasets", headers={"Authorization": "Bearer override-token"})
        assert opened.status_code == 200
    finally:
        app.dependency_overrides.clear()
    assert client.get("/v1/datasets").status_code == 200
