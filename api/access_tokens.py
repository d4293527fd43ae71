"""Access tokens for consumers: SIWE sign-in, JWTs in the RFC 9068 profile, and their re-check.

A consumer (a research lab's wallet) signs an EIP-4361 message carrying a nonce this service
issued; the service answers with a short-lived JWT whose `sub` is the address and whose
`scope` lists the live grants that address holds, one `<purpose>:<dataset id hex>` per grant.
`exp` is at most 15 minutes away and never after the earliest of those grants' `expiresAt`.

The chain stays the authority: every use of a token (introspection, an authorised read)
re-reads each of its grants at the latest block, and a grant that no longer authorises
(revoked, expired, dataset retired, deed transferred) or that was revoked since the token was
issued makes the token inactive at once, whatever its `exp` says.

Signing keys (`SOV_API_ACCESS_TOKEN_*`): an EC P-256 (ES256) or Ed25519 (EdDSA) private key in
a PEM file, whose public half is published as a JWKS; or an HS256 secret of at least 32 bytes;
or, when neither is configured, an ES256 key made at start-up (tokens then verify only while
this process runs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from api.auth import ApiSettings
from api.errors import ApiError
from api.siwe import (
    SiweFormatError,
    SiweMessage,
    parse_message,
    parse_time,
    personal_message_hash,
    recover_signer,
)

log = logging.getLogger(__name__)

TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1
MAX_TTL = 900  # seconds: the longest an access token lives
CLOCK_SKEW = 60  # seconds a SIWE `Issued At` may lie in the future (clocks differ)
NONCE_CAPACITY = 10_000  # outstanding nonces kept at once; more are refused until some expire
# Grants one token carries: each adds ~450 bytes to the header (uvicorn takes headers to 16 KiB).
MAX_TOKEN_GRANTS = 24
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]
EIP1271_MAGIC = bytes.fromhex("1626ba7e")  # isValidSignature(bytes32,bytes) selector: "valid"

# (address, EIP-191 hash, signature) -> None when the address has no code, else whether its
# EIP-1271 `isValidSignature` accepts the signature.
ContractSignatureCheck = Callable[[str, bytes, bytes], "bool | None"]


def chain_contract_check(client: Any) -> ContractSignatureCheck:
    """An EIP-1271 check that asks the chain `client` is connected to, at its latest block."""
    from eth_abi.abi import encode

    from ledger.errors import RPCError

    def check(address: str, digest: bytes, signature: bytes) -> bool | None:
        code = str(client.transport.request("eth_getCode", [address, "latest"]))
        if code in ("0x", "0x0", ""):
            return None
        data = EIP1271_MAGIC + encode(["bytes32", "bytes"], [digest, signature])
        try:
            answer = str(
                client.transport.request("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
            )
        except RPCError:  # a wallet that reverts rejects the signature (unreachable stays a 503)
            return False
        return bytes.fromhex(answer.removeprefix("0x"))[:4] == EIP1271_MAGIC

    return check


def with_challenge(error: ApiError) -> ApiError:
    """`error` with the `WWW-Authenticate` challenge RFC 6750 (section 3) asks of a refused bearer
    token: none given, an invalid (forged, expired, inactive) one, or one of too narrow a scope."""
    if error.status not in (401, 403):
        return error  # not about the token (the chain is down, say): no challenge
    challenge = 'Bearer realm="sovereign-ledger"'
    if error.code == "insufficient_scope":
        challenge += ', error="insufficient_scope"'
        required = str(error.details.get("required", ""))
        if required:
            challenge += f', scope="{required}"'
    elif error.code.startswith("token_") and error.code != "token_missing":
        # The description is the typed code: RFC 6750 allows no quote or backslash there.
        challenge += f', error="invalid_token", error_description="{error.code}"'
    error.headers["WWW-Authenticate"] = challenge
    return error


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """The key tokens are signed with: algorithm, key id, and the public JWK (None for HS256)."""

    algorithm: str
    kid: str
    private: Any
    public: Any
    jwk: dict[str, Any] | None


def _asymmetric(private: Any) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm

    public = private.public_key()
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        algorithm, jwk = "ES256", dict(ECAlgorithm.to_jwk(public, as_dict=True))
        members: tuple[str, ...] = ("crv", "kty", "x", "y")
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm, jwk = "EdDSA", dict(OKPAlgorithm.to_jwk(public, as_dict=True))
        members = ("crv", "kty", "x")
    else:
        raise ApiError(
            503,
            "not_configured",
            f"SOV_API_ACCESS_TOKEN_KEY_FILE holds a {type(private).__name__}; "
            "use an EC P-256 (ES256) or an Ed25519 (EdDSA) private key",
        )
    # RFC 7638 thumbprint: the required members, sorted, no whitespace, SHA-256.
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    kid = _b64url(hashlib.sha256(canonical.encode()).digest())
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return SigningKey(algorithm, kid, private, public, jwk)


def load_signing_key(api_settings: ApiSettings) -> SigningKey:
    """The configured key (file, then secret), else a new ES256 key for this process."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = api_settings.access_token_key_file
    if path is not None:
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ApiError(
                503,
                "not_configured",
                f"SOV_API_ACCESS_TOKEN_KEY_FILE {path} is not a readable unencrypted PEM private key: "
                f"{error}",
            ) from None
        return _asymmetric(private)
    secret = api_settings.access_token_secret
    if secret is not None:
        raw = secret.get_secret_value().encode()
        if len(raw) < 32:
            raise ApiError(
                503,
                "not_configured",
                f"SOV_API_ACCESS_TOKEN_SECRET is {len(raw)} bytes; HS256 needs at least 32",
            )
        kid = "hs256-" + _b64url(hashlib.sha256(b"sov-access-token-kid\x00" + raw).digest())[:16]
        return SigningKey("HS256", kid, raw, raw, None)
    log.warning(
        "no SOV_API_ACCESS_TOKEN_KEY_FILE or SOV_API_ACCESS_TOKEN_SECRET: access tokens are signed "
        "with a key made for this process, and stop verifying when it stops"
    )
    return _asymmetric(ec.generate_private_key(ec.SECP256R1()))


class NonceBook:
    """Single-use SIWE nonces: issued with a lifetime, spent once, remembered as spent until then."""

    def __init__(self, ttl: int, capacity: int = NONCE_CAPACITY) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._lock = threading.Lock()
        self._open: dict[str, float] = {}
        self._spent: dict[str, float] = {}

    def _purge(self, now: float) -> None:
        for book in (self._open, self._spent):
            for nonce in [n for n, until in book.items() if until <= now]:
                del book[nonce]

    def issue(self) -> tuple[str, float]:
        """A fresh nonce (32 hex digits) and when it stops being accepted (unix seconds)."""
        now = time.time()
        with self._lock:
            self._purge(now)
            if len(self._open) >= self.capacity:
                raise ApiError(
                    503,
                    "nonce_capacity",
                    f"{self.capacity} sign-in nonces are outstanding; try again in {self.ttl} s",
                )
            nonce = secrets.token_hex(16)
            self._open[nonce] = now + self.ttl
            return nonce, now + self.ttl

    def check(self, nonce: str, *, spend: bool = False) -> None:
        """Refuse a nonce that is not open (unknown, expired or spent); with `spend`, spend it."""
        now = time.time()
        with self._lock:
            self._purge(now)
            if nonce in self._spent:
                raise ApiError(
                    401,
                    "siwe_nonce_replayed",
                    f"nonce {nonce} was already used to sign in; ask GET /v1/auth/nonce for a new one",
                    {"nonce": nonce},
                )
            until = self._open.get(nonce)
            if until is None or until <= now:
                raise ApiError(
                    401,
                    "siwe_nonce_unknown",
                    f"nonce {nonce} was not issued by this service or has expired (nonces live "
                    f"{self.ttl} s); ask GET /v1/auth/nonce for a new one",
                    {"nonce": nonce},
                )
            if spend:
                del self._open[nonce]
                self._spent[nonce] = until

    def is_open(self, nonce: str) -> bool:
        """Whether `nonce` would still be accepted (for tests and diagnostics)."""
        with self._lock:
            return self._open.get(nonce, 0.0) > time.time()


@dataclass(frozen=True)
class TokenGrant:
    """One grant a token covers, as the chain held it when the token was issued."""

    dataset_id: int
    purpose_id: bytes
    not_before: int
    expires_at: int
    epoch: int
    revoked_before: bool  # the sticky revocation record (revokedOnce) at issue time

    @property
    def scope_item(self) -> str:
        """`<purpose name or 0x id>:<0x dataset id>`."""
        from ledger.purposes import describe_purpose

        return f"{describe_purpose(self.purpose_id)}:0x{self.dataset_id:064x}"

    def claim(self) -> dict[str, Any]:
        """The grant as it is written into the token's `grants` claim."""
        from ledger.purposes import describe_purpose

        return {
            "dataset_id": f"0x{self.dataset_id:064x}",
            "purpose": describe_purpose(self.purpose_id),
            "purpose_id": "0x" + self.purpose_id.hex(),
            "not_before": self.not_before,
            "expires_at": self.expires_at,
            "epoch": self.epoch,
            "revoked_before": self.revoked_before,
        }

    @classmethod
    def from_claim(cls, value: Any) -> TokenGrant:
        """The inverse of `claim` (ValueError for anything else)."""
        if not isinstance(value, dict):
            raise ValueError("a grants entry is not an object")
        try:
            return cls(
                dataset_id=int(str(value["dataset_id"]), 16),
                purpose_id=bytes.fromhex(str(value["purpose_id"]).removeprefix("0x")),
                not_before=int(value["not_before"]),
                expires_at=int(value["expires_at"]),
                epoch=int(value["epoch"]),
                revoked_before=bool(value["revoked_before"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a grants entry is malformed: {error}") from None


def parse_requested_scope(text: str) -> list[tuple[int, bytes | None]]:
    """`<purpose>:<dataset id>` or `<dataset id>` (any purpose) items, space-separated, as
    (dataset id, purpose id or None); ApiError 422 naming the first item that is neither."""
    from api.schemas import parse_purpose, parse_uint256

    items: list[tuple[int, bytes | None]] = []
    for item in text.split():
        purpose_text, _, dataset_text = item.rpartition(":")
        try:
            dataset_id = parse_uint256(dataset_text, what="dataset id")
            purpose = parse_purpose(purpose_text) if purpose_text else None
        except ValueError as error:
            raise ApiError(
                422,
                "invalid_request",
                f"scope: item {item[:140]!r} is not '<purpose>:<dataset id>' or '<dataset id>': {error}",
                {"field": "scope"},
            ) from None
        items.append((dataset_id, purpose))
    return items


def select_grants(
    grants: Sequence[TokenGrant], requested: Sequence[tuple[int, bytes | None]] | None
) -> list[TokenGrant]:
    """The live grants a token is to carry: those the request asked for (all when it asked for
    none), refused with 422 `scope_too_broad` when more than one token can hold."""
    chosen = [
        g
        for g in grants
        if requested is None or any(g.dataset_id == d and p in (None, g.purpose_id) for d, p in requested)
    ]
    if len(chosen) > MAX_TOKEN_GRANTS:
        raise ApiError(
            422,
            "scope_too_broad",
            f"this address holds {len(chosen)} live grants{' in the scope asked for' if requested else ''}; "
            f"a token carries at most {MAX_TOKEN_GRANTS}: ask for a narrower `scope` "
            "('<purpose>:<dataset id>' or '<dataset id>' items)",
            {"grants": len(chosen), "limit": MAX_TOKEN_GRANTS},
        )
    return chosen


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature, type, issuer, audience and lifetime checked out."""

    claims: dict[str, Any]
    grants: tuple[TokenGrant, ...]

    @property
    def subject(self) -> str:
        """The address the token was issued to."""
        return str(self.claims["sub"])


def _grant_reads(grantee: str, keys: Sequence[tuple[int, bytes]]) -> list[tuple[str, str, list[Any]]]:
    from eth_utils.address import to_checksum_address

    who = to_checksum_address(grantee)
    calls: list[tuple[str, str, list[Any]]] = []
    for dataset_id, purpose in keys:
        calls.append(("UsageGrants", "authorizationStatus", [dataset_id, who, purpose]))
        calls.append(("UsageGrants", "getGrant", [dataset_id, who, purpose]))
    return calls


def read_grants(client: Any, grantee: str, keys: Sequence[tuple[int, bytes]]) -> list[tuple[str, TokenGrant]]:
    """Status name and stored record of each (dataset, purpose) of `grantee`, at one block, one trip."""
    from ledger.chain.types import AuthorizationStatus

    if not keys:
        return []
    answers = client.call_many(_grant_reads(grantee, keys))
    out: list[tuple[str, TokenGrant]] = []
    for i, (dataset_id, purpose) in enumerate(keys):
        (status,) = answers[2 * i]
        (record,) = answers[2 * i + 1]
        not_before, expires_at, epoch, _revoked, revoked_once = record[:5]
        out.append(
            (
                AuthorizationStatus(int(status)).name.lower(),
                TokenGrant(
                    dataset_id,
                    bytes(purpose),
                    int(not_before),
                    int(expires_at),
                    int(epoch),
                    bool(revoked_once),
                ),
            )
        )
    return out


class TokenAuthority:
    """Issues and verifies this service's access tokens, and keeps its sign-in nonces."""

    def __init__(self, api_settings: ApiSettings) -> None:
        self.api_settings = api_settings
        self.key = load_signing_key(api_settings)
        self.nonces = NonceBook(api_settings.siwe_nonce_ttl)
        self.ttl = min(api_settings.access_token_ttl, MAX_TTL)

    # ----------------------------------------------------------------- where and who

    def origin(self, request_base_url: str) -> tuple[str, str]:
        """(scheme, authority) a SIWE message must name: SOV_API_PUBLIC_URL's, else the request's."""
        parts = urlsplit(self.api_settings.public_url or request_base_url)
        return parts.scheme, parts.netloc

    def issuer(self, request_base_url: str) -> str:
        """`iss` of the tokens: the service's public origin."""
        scheme, authority = self.origin(request_base_url)
        return f"{scheme}://{authority}"

    def audience(self, request_base_url: str) -> str:
        """`aud` of the tokens: SOV_API_ACCESS_TOKEN_AUDIENCE, else the issuer (this service reads them)."""
        return self.api_settings.access_token_audience or self.issuer(request_base_url)

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this service's tokens (none for HS256)."""
        return {"keys": [self.key.jwk] if self.key.jwk is not None else []}

    # ----------------------------------------------------------------- sign-in

    def verify_sign_in(
        self,
        text: str,
        signature: bytes,
        *,
        base_url: str,
        chain_id: int,
        contract_check: ContractSignatureCheck | None = None,
    ) -> SiweMessage:
        """The message, after every check but spending its nonce; raises the typed refusal.

        An address with code (a Safe, a smart account) signs in when its EIP-1271
        `isValidSignature` accepts the signature (`contract_check`), as EIP-4361 specifies.
        Nothing changes here: a refused message leaves its nonce open for the genuine one.
        """
        try:
            message = parse_message(text)
        except SiweFormatError as error:
            raise ApiError(
                422, "siwe_invalid_message", f"not an EIP-4361 message: {error}", {"field": "message"}
            ) from None
        scheme, authority = self.origin(base_url)
        if message.domain != authority:
            raise ApiError(
                401,
                "siwe_domain_mismatch",
                f"the message signs in to {message.domain!r}, not to this service ({authority!r})",
                {"domain": message.domain, "expected": authority},
            )
        if message.scheme is not None and message.scheme != scheme:
            raise ApiError(
                401,
                "siwe_domain_mismatch",
                f"the message names scheme {message.scheme!r}; this service is {scheme!r}",
                {"scheme": message.scheme, "expected": scheme},
            )
        uri = urlsplit(message.uri)
        if (uri.scheme, uri.netloc) != (scheme, authority):
            raise ApiError(
                401,
                "siwe_uri_mismatch",
                f"URI {message.uri} is not on this service ({scheme}://{authority})",
                {"uri": message.uri, "expected": f"{scheme}://{authority}"},
            )
        if message.chain_id != chain_id:
            raise ApiError(
                401,
                "siwe_chain_mismatch",
                f"the message is for chain {message.chain_id}; this service's chain is {chain_id}",
                {"chain_id": message.chain_id, "expected": chain_id},
            )
        now = time.time()
        issued = parse_time(message.issued_at, "Issued At")
        if issued > now + CLOCK_SKEW:
            raise ApiError(
                401,
                "siwe_issued_in_future",
                f"Issued At {message.issued_at} is in the future (server time {_rfc3339(now)})",
                {"issued_at": message.issued_at},
            )
        if (
            message.expiration_time is not None
            and parse_time(message.expiration_time, "Expiration Time") <= now
        ):
            raise ApiError(
                401,
                "siwe_expired",
                f"the message expired at {message.expiration_time} (server time {_rfc3339(now)}); "
                "sign a new one",
                {"expiration_time": message.expiration_time},
            )
        if message.not_before is not None and parse_time(message.not_before, "Not Before") > now:
            raise ApiError(
                401,
                "siwe_not_yet_valid",
                f"the message is valid from {message.not_before} (server time {_rfc3339(now)})",
                {"not_before": message.not_before},
            )
        self.nonces.check(message.nonce)
        signer: str | None = None
        problem = ""
        try:
            signer = recover_signer(text, signature)
        except ValueError as error:
            problem = str(error)
        if signer == message.address:
            return message
        wallet = None
        if contract_check is not None:
            wallet = contract_check(message.address, personal_message_hash(text), signature)
        if wallet is True:
            return message
        if wallet is False:
            raise ApiError(
                401,
                "siwe_bad_signature",
                f"the contract wallet {message.address} does not accept this signature (EIP-1271)",
                {"address": message.address, "wallet": True},
            )
        if signer is None:
            raise ApiError(401, "siwe_bad_signature", f"the signature is not valid: {problem}")
        raise ApiError(
            401,
            "siwe_bad_signature",
            f"the signature is by {signer}, not by the message's address {message.address}",
            {"address": message.address, "signer": signer},
        )

    def live_grants(self, service: Any, address: str) -> list[TokenGrant]:
        """The grants `address` holds that authorise now (found in the index, confirmed on chain)."""
        records = service.index(lambda index: list(index.grants(grantee=address)))
        keys = [(int(r.dataset_id), bytes(r.purpose)) for r in records]
        return [
            grant for status, grant in read_grants(service.client(), address, keys) if status == "authorized"
        ]

    def issue(
        self, message: SiweMessage, grants: Sequence[TokenGrant], *, base_url: str, client_id: str
    ) -> tuple[str, dict[str, Any]]:
        """Spend the message's nonce and sign its token; returns the JWT and its claims."""
        now = int(time.time())
        # A grant ending before the token could be used (the chain's clock behind this one's) is left out.
        usable = sorted((g for g in grants if g.expires_at > now), key=lambda g: (g.dataset_id, g.purpose_id))
        exp = min([now + self.ttl, *(g.expires_at for g in usable)])
        self.nonces.check(message.nonce, spend=True)  # atomic: of two racing sign-ins one wins
        claims: dict[str, Any] = {
            "iss": self.issuer(base_url),
            "aud": self.audience(base_url),
            "sub": message.address,
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": secrets.token_hex(16),
            "scope": " ".join(g.scope_item for g in usable),
            "chain_id": message.chain_id,
            "grants": [g.claim() for g in usable],
        }
        token = jwt.encode(
            claims,
            self.key.private,
            algorithm=self.key.algorithm,
            headers={"typ": TOKEN_TYPE, "kid": self.key.kid},
        )
        return token, claims

    # ----------------------------------------------------------------- use

    def verify(self, token: str, *, base_url: str) -> VerifiedToken:
        """Signature, type, key id, issuer, audience and lifetime; raises the typed 401."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise ApiError(401, "token_invalid", f"the bearer token is not a JWT: {error}") from None
        if header.get("typ") != TOKEN_TYPE:
            raise ApiError(
                401,
                "token_invalid",
                f"the token's typ is {header.get('typ')!r}, not {TOKEN_TYPE!r}: "
                "not an access token of this service",
            )
        if header.get("kid") != self.key.kid or header.get("alg") != self.key.algorithm:
            raise ApiError(
                401,
                "token_invalid",
                f"the token is signed with key {header.get('kid')!r} ({header.get('alg')}), which this "
                f"service does not hold (its key is {self.key.kid!r}, {self.key.algorithm})",
            )
        issuer, audience = self.issuer(base_url), self.audience(base_url)
        try:
            claims = jwt.decode(
                token,
                self.key.public,
                algorithms=[self.key.algorithm],
                audience=audience,
                issuer=issuer,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token_expired", "the access token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise ApiError(
                401,
                "token_wrong_audience",
                f"the access token is not meant for this service (audience {audience})",
            ) from None
        except jwt.InvalidIssuerError:
            raise ApiError(
                401, "token_wrong_issuer", f"the access token was not issued by this service ({issuer})"
            ) from None
        except jwt.InvalidSignatureError:
            raise ApiError(
                401, "token_bad_signature", "the access token's signature does not verify"
            ) from None
        except jwt.InvalidTokenError as error:
            raise ApiError(401, "token_invalid", f"the access token is not valid: {error}") from None
        try:
            grants = tuple(TokenGrant.from_claim(g) for g in claims.get("grants", []))
        except ValueError as error:
            raise ApiError(401, "token_invalid", f"the access token's grants claim: {error}") from None
        return VerifiedToken(claims, grants)

    def recheck(self, service: Any, token: VerifiedToken) -> None:
        """Raise 401 `token_inactive` unless every grant of the token still authorises, unchanged."""
        keys = [(g.dataset_id, g.purpose_id) for g in token.grants]
        for issued, (status, now) in zip(
            token.grants, read_grants(service.client(), token.subject, keys), strict=True
        ):
            reason = None
            if status != "authorized":
                reason = f"grant_{status}" if status in ("revoked", "expired", "not_yet_valid") else status
            elif now.revoked_before and not issued.revoked_before:
                reason = "grant_revoked"  # revoked and re-issued since the token was issued
            elif (now.not_before, now.expires_at, now.epoch) != (
                issued.not_before,
                issued.expires_at,
                issued.epoch,
            ):
                reason = "grant_changed"
            if reason is not None:
                raise ApiError(
                    401,
                    "token_inactive",
                    f"the access token is no longer active: its grant {issued.scope_item} is "
                    f"{reason.removeprefix('grant_').replace('_', ' ')} on chain; sign in again",
                    {
                        "reason": reason,
                        "dataset_id": f"0x{issued.dataset_id:064x}",
                        "purpose_id": "0x" + issued.purpose_id.hex(),
                    },
                )


def _rfc3339(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
