"""`sov token get|introspect`: sign in to a running service with a keystore account, check a token.

`get` asks the service for a nonce, writes the EIP-4361 message for the URL it was given (never
for a domain the service names: a service that names another one is refused, so a message
signed here cannot be relayed to a site the user did not point at), signs it with the account's
key (`Keystore.account`), and prints the access token on stdout (its subject, expiry and scope
on stderr), so `TOKEN=$(sov token get)` works.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from .common import AccountOption, JsonFlag, emit_json, fail, settings, user_errors

app = typer.Typer(
    help="Access tokens: sign in to a service with your wallet (SIWE), introspect.", no_args_is_help=True
)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="SOV_API_URL", help="the service's base URL (as its users reach it)"),
]


class ServiceRefusal(Exception):
    """The service answered with its typed error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _call(method: str, url: str, **kwargs: Any) -> Any:
    """One request; the service's typed error or an unreachable service as `ServiceRefusal`."""
    import httpx

    try:
        response = httpx.request(method, url, timeout=30.0, **kwargs)
    except httpx.HTTPError as error:
        raise ServiceRefusal(0, "unreachable", f"cannot reach the service at {url}: {error}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        typed = body.get("error") if isinstance(body, dict) else None
        if isinstance(typed, dict):
            raise ServiceRefusal(response.status_code, str(typed.get("code")), str(typed.get("message")))
        raise ServiceRefusal(
            response.status_code,
            "http_error",
            f"{url} answered HTTP {response.status_code}: {response.text[:200]}",
        )
    if not isinstance(body, dict):
        raise ServiceRefusal(response.status_code, "bad_response", f"{url} did not answer a JSON object")
    return body


def _origin(url: str) -> tuple[str, str, str]:
    """(scheme, authority, base) of the URL the user gave; ValueError when it is not http(s)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r} is not an http(s) URL such as http://127.0.0.1:8000")
    return parts.scheme, parts.netloc, f"{parts.scheme}://{parts.netloc}"


def _refuse(error: ServiceRefusal, json: bool) -> typer.Exit:
    return fail(error.message, json_output=json, error_code=error.code)


@app.command()
@user_errors
def get(
    url: UrlOption = "http://127.0.0.1:8000",
    account: AccountOption = "dev0",
    client_id: Annotated[str, typer.Option(help="names this client in the token (`client_id`)")] = "sov-cli",
    statement: Annotated[str, typer.Option(help="the sentence the message shows")] = (
        "Sign in to read the datasets this account holds grants for."
    ),
    scope: Annotated[
        str | None,
        typer.Option(help="only these grants: space-separated '<purpose>:<dataset id>' or '<dataset id>'"),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Sign in with Ethereum as ACCOUNT and print an access token scoped to its live grants."""
    from api.siwe import SiweMessage, sign_message
    from ledger.keys import Keystore

    scheme, authority, base = _origin(url)
    try:
        offer = _call("GET", f"{base}/v1/auth/nonce")
    except ServiceRefusal as error:
        raise _refuse(error, json) from None
    if offer.get("domain") != authority:
        raise fail(
            f"the service at {base} asks to sign in to {offer.get('domain')!r}, not to {authority!r}; "
            "pass the URL its users reach it at (its SOV_API_PUBLIC_URL) as --url",
            json_output=json,
            error_code="siwe_domain_mismatch",
        )
    chain_id = int(offer["chain_id"])
    signer = Keystore(settings()).account(account, chain_id=chain_id)
    message = SiweMessage(
        domain=authority,
        address=str(signer.address),
        uri=f"{base}/",
        chain_id=chain_id,
        nonce=str(offer["nonce"]),
        issued_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        statement=statement,
        scheme=None if scheme == "https" else scheme,
    )
    text = message.to_text()
    try:
        token = _call(
            "POST",
            f"{base}/v1/auth/siwe",
            json={
                "message": text,
                "signature": sign_message(signer, text),
                "client_id": client_id,
                **({} if scope is None else {"scope": scope}),
            },
        )
    except ServiceRefusal as error:
        raise _refuse(error, json) from None
    if json:
        emit_json(token)
        return
    sys.stdout.write(str(token["access_token"]) + "\n")
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(token["expires_at"])))
    scope = token["scope"] or "empty (no live grants)"
    sys.stderr.write(
        f"access token for {token['sub']}, expires {expires} (in {token['expires_in']} s); scope: {scope}\n"
    )


@app.command()
@user_errors
def introspect(
    token: Annotated[str, typer.Argument(help="the access token ('-' reads it from stdin)")],
    url: UrlOption = "http://127.0.0.1:8000",
    json: JsonFlag = False,
) -> None:
    """Ask the service whether TOKEN is active now (it re-reads the token's grants on chain)."""
    _, _, base = _origin(url)
    value = sys.stdin.readline().strip() if token == "-" else token.strip()
    try:
        answer = _call("POST", f"{base}/v1/auth/introspect", data={"token": value})
    except ServiceRefusal as error:
        raise _refuse(error, json) from None
    if json:
        emit_json(answer)
        return
    if not answer.get("active"):
        sys.stdout.write("inactive\n")
        return
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(answer["exp"])))
    scope = answer.get("scope") or "empty (no live grants)"
    sys.stdout.write(f"active: {answer['sub']}, expires {expires}; scope: {scope}\n")
