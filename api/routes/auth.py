"""`/v1/auth`: sign in with Ethereum (EIP-4361) for an access token, introspect it (RFC 7662), JWKS.

GET  /v1/auth/nonce       a single-use nonce, and the domain, URI and chain id to sign for
POST /v1/auth/siwe        {message, signature[, client_id]} -> an RFC 9068 JWT access token
POST /v1/auth/introspect  form `token=...` -> {"active": ...} after re-reading its grants
GET  /v1/auth/jwks        the public key(s) that verify the tokens
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.access_tokens import (
    TOKEN_TYPE,
    TokenAuthority,
    chain_contract_check,
    parse_requested_scope,
    select_grants,
    with_challenge,
)
from api.auth import bearer_credentials, check_token
from api.errors import ApiError
from api.routes.deps import ApiSettingsDep, Service, ServiceDep, SettingsDep, bearer_scheme, get_service
from api.schemas import ErrorOut

router = APIRouter(tags=["auth"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})

# Paths whose body is a form (RFC 7662), not JSON: app.py lets them past the JSON-only check.
FORM_PATHS = frozenset({"/v1/auth/introspect"})


async def get_authority(request: Request, api_settings: ApiSettingsDep) -> TokenAuthority:
    """The app's token authority for these settings (made on first use: its key, its nonces)."""
    state = request.app.state
    with state.services_lock:
        authorities: dict[int, TokenAuthority] = getattr(state, "token_authorities", None) or {}
        state.token_authorities = authorities
        authority = authorities.get(id(api_settings))
        if authority is None:
            authority = authorities[id(api_settings)] = TokenAuthority(api_settings)
        return authority


AuthorityDep = Annotated[TokenAuthority, Depends(get_authority)]


def base_url(request: Request) -> str:
    """The origin this request was sent to (used when SOV_API_PUBLIC_URL is unset)."""
    return str(request.base_url)


def _is_access_token(credentials: str) -> bool:
    """Whether `credentials` claim to be one of our JWTs (so their refusal should say why)."""
    import jwt

    try:
        return jwt.get_unverified_header(credentials).get("typ") == TOKEN_TYPE
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return False


async def require_read_or_access_token(
    request: Request,
    api_settings: ApiSettingsDep,
    settings: SettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """The read guard: reads closed by SOV_API_READS_REQUIRE_TOKEN open to the service's token,
    and to a consumer's active access token that covers at least one live grant.

    Open reads touch nothing here (not even the token key, so a bad key file costs no read).
    """
    if not api_settings.reads_require_token:
        return
    given = bearer_credentials(request)
    secret = api_settings.token.get_secret_value() if api_settings.token is not None else ""
    if given is not None and secret and hmac.compare_digest(given.encode(), secret.encode()):
        return
    if given is None or not _is_access_token(given):
        check_token(request, api_settings, for_write=False)
        return
    authority = await get_authority(request, api_settings)
    service = await get_service(request, settings, api_settings)
    try:
        verified = authority.verify(given, base_url=base_url(request))
        if not verified.grants:
            raise ApiError(
                403,
                "insufficient_scope",
                "the access token covers no grant (scope empty); this service opens its reads to "
                "holders of a live grant: ask a dataset's owner for one, then sign in again",
                {"scope": ""},
            )
        await run_in_threadpool(authority.recheck, service, verified)
    except ApiError as error:
        raise with_challenge(error) from None


class NonceOut(BaseModel):
    """What a client needs to write the EIP-4361 message."""

    nonce: str = Field(description="single-use; put it in the message's `Nonce:` line")
    expires_at: int = Field(description="unix time after which the nonce is refused")
    domain: str = Field(description="the message's domain (first line)")
    uri: str = Field(description="a URI on this service for the message's `URI:` line")
    chain_id: int = Field(description="the message's `Chain ID:`")


class SiweRequest(BaseModel):
    """An EIP-4361 message and its EIP-191 (`personal_sign`) signature."""

    message: str = Field(min_length=1, max_length=8192, description="the EIP-4361 text, LF line ends")
    signature: str = Field(
        pattern=r"^0x(?:[0-9a-fA-F]{2}){1,4096}$",
        description="0x-hex: 65 bytes from an account; any length from a contract wallet (EIP-1271)",
    )
    client_id: str = Field(
        default="sov", pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="the OAuth client (the app signing in)"
    )
    scope: str | None = Field(
        default=None,
        max_length=8192,
        description="the grants to carry, space-separated '<purpose>:<dataset id>' or '<dataset id>' "
        "items (RFC 6749 scope); unset = every live grant of the address",
    )


class TokenGrantOut(BaseModel):
    """One grant the token covers, as the chain held it at sign-in."""

    dataset_id: str
    purpose: str
    purpose_id: str
    not_before: int
    expires_at: int
    epoch: int
    revoked_before: bool


class TokenOut(BaseModel):
    """RFC 6749 token response, with the token's subject, expiry and grants spelled out."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    expires_at: int
    scope: str = Field(description="`<purpose>:<dataset id>` per live grant, space-separated; may be empty")
    sub: str
    client_id: str
    grants: list[TokenGrantOut]


class IntrospectionOut(BaseModel):
    """RFC 7662 introspection response (only `active` when the token is not)."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None


@router.get("/auth/nonce", response_model=NonceOut, summary="A single-use nonce for a SIWE sign-in")
def nonce(request: Request, authority: AuthorityDep, service: ServiceDep) -> NonceOut:
    """A nonce valid for SOV_API_SIWE_NONCE_TTL seconds, with the fields the message must carry."""
    chain_id = int(service.client().chain_id)
    value, until = authority.nonces.issue()
    scheme, domain = authority.origin(base_url(request))
    return NonceOut(
        nonce=value, expires_at=int(until), domain=domain, uri=f"{scheme}://{domain}/", chain_id=chain_id
    )


@router.post(
    "/auth/siwe",
    response_model=TokenOut,
    summary="Sign in with Ethereum: a signed EIP-4361 message for a short-lived access token",
)
def sign_in(
    body: SiweRequest, request: Request, response: Response, authority: AuthorityDep, service: ServiceDep
) -> TokenOut:
    """Verify the message (domain, URI, chain, times, nonce, signature), spend its nonce, and
    return a token scoped to the grants its address holds now (possibly none)."""
    # RFC 6749 section 5.1: a response carrying a token is never cached.
    response.headers["Cache-Control"] = "no-store"
    origin = base_url(request)
    requested = None if body.scope is None else parse_requested_scope(body.scope)
    client = service.client()
    message = authority.verify_sign_in(
        body.message,
        bytes.fromhex(body.signature[2:]),
        base_url=origin,
        chain_id=int(client.chain_id),
        contract_check=chain_contract_check(client),
    )
    grants = select_grants(authority.live_grants(service, message.address), requested)
    token, claims = authority.issue(message, grants, base_url=origin, client_id=body.client_id)
    return TokenOut(
        access_token=token,
        expires_in=int(claims["exp"]) - int(claims["iat"]),
        expires_at=int(claims["exp"]),
        scope=str(claims["scope"]),
        sub=str(claims["sub"]),
        client_id=body.client_id,
        grants=[TokenGrantOut(**g) for g in claims["grants"]],
    )


def introspect_token(
    authority: TokenAuthority, service: Service, token: str, origin: str
) -> IntrospectionOut:
    """RFC 7662: the token's claims if it verifies and its grants still authorise, else inactive."""
    try:
        verified = authority.verify(token, base_url=origin)
        authority.recheck(service, verified)
    except ApiError:
        return IntrospectionOut(active=False)
    claims = verified.claims
    return IntrospectionOut(
        active=True,
        scope=str(claims.get("scope", "")),
        client_id=str(claims["client_id"]),
        sub=verified.subject,
        token_type="Bearer",
        exp=int(claims["exp"]),
        iat=int(claims["iat"]),
        nbf=int(claims["nbf"]) if "nbf" in claims else None,
        aud=str(claims["aud"]),
        iss=str(claims["iss"]),
        jti=str(claims["jti"]),
    )


_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string"},
                        "token_type_hint": {"type": "string", "enum": ["access_token"]},
                    },
                }
            }
        },
    }
}


@router.post(
    "/auth/introspect",
    response_model=IntrospectionOut,
    response_model_exclude_none=True,
    openapi_extra=_FORM_BODY,
    summary="RFC 7662 introspection: is this access token active now (its grants re-read on chain)?",
)
async def introspect(request: Request, authority: AuthorityDep, service: ServiceDep) -> IntrospectionOut:
    """`{"active": false}` for a token that is expired, forged, not for this service, or whose
    grants no longer all authorise on chain; its claims otherwise."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(
            415,
            "unsupported_media_type",
            "introspection takes a form (application/x-www-form-urlencoded, RFC 7662), not "
            + (content_type or "no Content-Type"),
            {"content_type": content_type[:80]},
        )
    try:
        form = parse_qs((await request.body()).decode("utf-8"), strict_parsing=False, keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_request", "the form is not UTF-8 text", {"field": "token"}) from None
    tokens = form.get("token", [])
    if len(tokens) != 1 or not tokens[0]:
        raise ApiError(
            422,
            "invalid_request",
            "token: the form must carry exactly one non-empty `token` field",
            {"field": "token"},
        )
    return await run_in_threadpool(introspect_token, authority, service, tokens[0], base_url(request))


@router.get("/auth/jwks", summary="The public keys that verify this service's access tokens (JWKS)")
def jwks(authority: AuthorityDep) -> dict[str, Any]:
    """RFC 7517 key set; empty when tokens are signed with an HS256 secret."""
    return authority.jwks()
