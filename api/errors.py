"""The service's error model: every failure is `{"error": {"code", "message", "details"}}`.

`ApiError` is what route code raises for failures it detects itself; the handlers installed by
`install_error_handlers` translate everything else (validation errors, `ledger` errors, contract
reverts, HTTP errors raised by Starlette) into the same body, so a client parses one shape.
Messages never contain a secret: the bearer token is never echoed and request headers are never
copied into a body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    ConfigurationError,
    ContentIntegrityError,
    ContentNotFoundError,
    GrantRevocationFinalError,
    InvalidCIDError,
    InvalidGrantNonceError,
    KeystoreError,
    LedgerError,
    RPCError,
    UnreachableError,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure with its HTTP status, a stable machine-readable `code` and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        # e.g. the `WWW-Authenticate` challenge RFC 6750 asks of a refused access token.
        self.headers: dict[str, str] = dict(headers or {})


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A `JSONResponse` carrying `error_body(...)`."""
    return JSONResponse(
        status_code=status, content=error_body(code, message, details), headers=dict(headers or {})
    )


def _jsonable(value: Any) -> Any:
    """Revert arguments as JSON: bytes as 0x-hex, integers (Solidity uints) as decimal strings."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | float) or value is None else str(value)


def _snake(name: str) -> str:
    """`UsageGrantsExpired` -> `usage_grants_expired` (stable codes from Solidity error names)."""
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def revert_status(exc: BaseException, error_name: str) -> int:
    """HTTP status of a decoded contract revert, from the builtin its class inherits.

    A signed grant that the chain's state has overtaken (its nonce used or cancelled, or the
    grant revoked since it was signed) is 409: the signature may be genuine, but the state it was
    made for is gone and asking again will not help. Permission-type reverts (not owner,
    expired, revoked) are 403; "already" conflicts 409; unknown ids 404; invalid arguments 422;
    any other state conflict 409.
    """
    if isinstance(exc, GrantRevocationFinalError | InvalidGrantNonceError):
        return 409
    if isinstance(exc, PermissionError):
        return 403
    if "Already" in error_name or isinstance(exc, FileExistsError):
        return 409
    if isinstance(exc, LookupError) or "Unknown" in error_name:
        return 404
    if isinstance(exc, ValueError):
        return 422
    return 409


def _validation_message(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """One sentence naming every offending field, plus the per-field list for programs."""
    fields: list[dict[str, Any]] = []
    parts: list[str] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)] if isinstance(err, dict) else []
        where = ".".join(loc) or "request"
        msg = str(err.get("msg", "invalid value")) if isinstance(err, dict) else str(err)
        # pydantic prefixes messages raised by our validators with "Value error, "; drop it.
        msg = msg.removeprefix("Value error, ")
        fields.append({"field": where, "message": msg, "type": str(err.get("type", ""))})
        parts.append(f"{where}: {msg}")
    return "invalid request: " + "; ".join(parts), fields


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through the typed error body."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, fields = _validation_message(list(exc.errors()))
        return error_response(422, "invalid_request", message, {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(LedgerError)
    async def _ledger(_: Request, exc: LedgerError) -> JSONResponse:
        return ledger_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug: log it with its traceback, never send internals (or anything secret) to the client.
        log.exception("unhandled error in request", exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the service log")


def ledger_error_response(exc: LedgerError) -> JSONResponse:
    """The response for an error raised by `ledger`."""
    error_name = getattr(exc, "error_name", None)
    if isinstance(error_name, str) and error_name:
        args = getattr(exc, "args_by_name", None) or {}
        return error_response(
            revert_status(exc, error_name),
            _snake(error_name),
            str(exc),
            {"revert": error_name, "args": _jsonable(args)},
        )
    if isinstance(exc, UnreachableError):
        return error_response(503, "unreachable", str(exc))
    if isinstance(exc, KeystoreError):
        # The operator account is the service's own configuration, not the client's input.
        return error_response(503, "not_configured", f"the service's operator account is unusable: {exc}")
    if isinstance(exc, RPCError):
        return error_response(502, "chain_rpc_error", str(exc), {"method": exc.method, "rpc_code": exc.code})
    if isinstance(exc, ConfigurationError):
        return error_response(503, "not_configured", str(exc))
    if isinstance(exc, InvalidCIDError):
        return error_response(422, "invalid_cid", str(exc))
    if isinstance(exc, ContentNotFoundError):
        return error_response(404, "content_not_found", str(exc))
    if isinstance(exc, ContentIntegrityError):
        return error_response(502, "content_integrity", str(exc))
    if isinstance(exc, PermissionError):
        return error_response(403, "forbidden", str(exc))
    if isinstance(exc, LookupError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, ValueError):
        return error_response(422, "invalid_request", str(exc))
    if isinstance(exc, ConnectionError | TimeoutError):
        return error_response(503, "unreachable", str(exc))
    return error_response(409, _snake(type(exc).__name__.removesuffix("Error")) or "conflict", str(exc))
