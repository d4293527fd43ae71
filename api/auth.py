"""Service settings and bearer-token authentication.

Writes always need `Authorization: Bearer <SOV_API_TOKEN>`; reads are open unless
`SOV_API_READS_REQUIRE_TOKEN` is set. The token is compared in constant time and is never
logged, echoed, or put in an error body (it lives in a `SecretStr`, whose repr is masked).

Consumers sign in with their own wallet instead and get an access token (`api.access_tokens`),
whose keys and lifetimes are configured here too (`SOV_API_PUBLIC_URL`, `SOV_API_ACCESS_TOKEN_*`).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import Request
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.errors import ApiError


class ApiSettings(BaseSettings):
    """What the HTTP service itself is configured with (`SOV_API_*`)."""

    model_config = SettingsConfigDict(env_prefix="SOV_API_", extra="ignore")

    token: SecretStr | None = Field(
        default=None, description="bearer token every write must carry; unset = writes refused"
    )
    account: str | None = Field(
        default=None, description="keystore alias of the operator account the service signs with"
    )
    account_password: SecretStr | None = Field(
        default=None, description="password of that keystore entry (dev aliases need none)"
    )
    reads_require_token: bool = Field(default=False, description="close reads behind the token too")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest accepted request body")
    index_sync_interval: float = Field(
        default=1.0, ge=0.0, description="seconds a synced event index is trusted before list queries sync it"
    )
    worker_threads: int = Field(
        default=40, ge=1, le=256, description="threads that run blocking route handlers (chain RPCs)"
    )
    public_url: str | None = Field(
        default=None,
        description="the service's public origin (https://ledger.example.org): the SIWE domain and URI "
        "a sign-in must name, and the tokens' issuer; unset = the origin each request was sent to",
    )
    access_token_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256 -> ES256, Ed25519 -> EdDSA) that signs access tokens",
    )
    access_token_secret: SecretStr | None = Field(
        default=None, description="HS256 secret (32+ bytes) that signs access tokens, when no key file is set"
    )
    access_token_audience: str | None = Field(
        default=None, description="`aud` of access tokens; unset = the issuer (this service reads them)"
    )
    access_token_ttl: int = Field(default=900, ge=30, le=900, description="access token lifetime, seconds")
    siwe_nonce_ttl: int = Field(
        default=300, ge=10, le=3600, description="how long a sign-in nonce is accepted"
    )


def bearer_credentials(request: Request) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, or None."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def check_token(request: Request, api_settings: ApiSettings, *, for_write: bool) -> None:
    """Raise 401/403 unless the request carries the configured token (where one is needed)."""
    if not for_write and not api_settings.reads_require_token:
        return
    configured = api_settings.token
    if configured is None or not configured.get_secret_value():
        raise ApiError(
            403,
            "writes_disabled" if for_write else "reads_disabled",
            "this service has no SOV_API_TOKEN configured, so it accepts no "
            + ("writes" if for_write else "reads"),
        )
    given = bearer_credentials(request)
    if given is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing bearer token: send 'Authorization: Bearer <token>'",
        )
    # Constant time, on bytes, so the comparison leaks neither content nor a prefix length.
    if not hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "the bearer token is not this service's token")
