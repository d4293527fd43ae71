"""The FastAPI application: `create_app(settings, api_settings)`.

Routes are versioned under `/v1`; the web page (`/`, `/audit/{cid}`) and its static files are
served by the same app, with no external resources. Request bodies are capped before any
parsing, and every failure leaves as the typed error body of `api.errors`.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import ApiSettings
from api.errors import error_response, install_error_handlers
from api.routes import access, audit, datasets, events, grants, health, jobs, web
from api.routes import auth as auth_routes
from api.routes.deps import Service
from api.webhooks import WebhookDispatcher
from ledger.settings import Settings

API_VERSION = "1"


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 422 before the app reads them.

    A declared `Content-Length` over the limit is refused at once; a chunked body is buffered
    up to the limit and refused as soon as it passes it, so memory stays bounded either way.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> Any:
        told = f"{size} bytes" if size is not None else f"more than {self.max_bytes} bytes"
        return error_response(
            422,
            "payload_too_large",
            f"request body is {told}; this service accepts at most {self.max_bytes} bytes",
            {"limit_bytes": self.max_bytes},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(declared)(scope, receive, send)
                    return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # Client went away before sending its body: nothing to answer.
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(None)(scope, receive, send)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json_media_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JsonContentTypeMiddleware:
    """Refuse a request body that is not declared as JSON with 415, naming what was sent.

    Without this, FastAPI does not parse a body sent as `text/plain` (or with no content type)
    and the client gets a validation error about a missing object, which hides the real mistake.
    """

    def __init__(self, app: ASGIApp, form_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        # Endpoints a standard defines with a form body (RFC 7662 introspection): they check it.
        self.form_paths = form_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or scope["path"] in self.form_paths
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        if has_body and not _is_json_media_type(content_type):
            told = f"Content-Type {content_type[:80]!r}" if content_type else "no Content-Type"
            response = error_response(
                415,
                "unsupported_media_type",
                f"request body sent with {told}; this API accepts only JSON bodies (application/json)",
                {"content_type": content_type[:80]},
            )
            await response(scope, receive, send)
            return
        # The outer BodyLimitMiddleware has already buffered the body (bounded), so this is one
        # message. Bytes that are not text in any JSON encoding would otherwise reach FastAPI's
        # catch-all "There was an error parsing the body" (400) instead of a precise answer.
        message = await receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        try:
            body.decode(json.detect_encoding(body))
        except UnicodeDecodeError as exc:
            response = error_response(
                422,
                "invalid_json",
                f"request body is not valid JSON (JSON decode error at byte {exc.start}): "
                f"not {exc.encoding.upper()} text",
                {"position": exc.start},
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return message
            return await receive()

        await self.app(scope, replay, send)


def _install_json_error_handler(app: FastAPI) -> None:
    """Say "not valid JSON, and where" instead of a validation error on field `0`."""
    fallback = app.exception_handlers[RequestValidationError]

    async def handler(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        for err in exc.errors():
            if isinstance(err, dict) and err.get("type") == "json_invalid":
                loc = list(err.get("loc", ()))
                position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
                reason = str((err.get("ctx") or {}).get("error", "JSON decode error"))
                where = f" at character {position}" if position is not None else ""
                message = f"request body is not valid JSON (JSON decode error{where}): {reason}"
                return error_response(422, "invalid_json", message, {"position": position})
        response = fallback(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.exception_handlers[RequestValidationError] = handler


def create_app(settings: Settings, api_settings: ApiSettings | None = None) -> FastAPI:
    """Build the service for `settings` (chain, store, data dir) and `api_settings` (token, account)."""
    api_settings = api_settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Route handlers block on RPCs in worker threads; the pool size bounds concurrent RPCs.
        # Measured under 50 clients: 1-4 threads gave half the throughput of 40 (anyio's default).
        anyio.to_thread.current_default_thread_limiter().total_tokens = api_settings.worker_threads
        # Signed webhooks: the queue is persisted under SOV_HOME, so a restart resumes it.
        app.state.webhook_dispatcher = WebhookDispatcher(settings)
        app.state.webhook_dispatcher.start()
        yield
        app.state.webhook_dispatcher.stop()
        services: dict[tuple[int, int], Service] = app.state.services
        for service in list(services.values()):
            service.close()
        services.clear()

    app = FastAPI(
        title="sovereign-ledger",
        version=API_VERSION,
        description=(
            "Data sovereignty ledger for federated learning: datasets, usage grants, training "
            "jobs and their rounds, and audits of models. Writes need `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        responses={422: {"description": "invalid request"}},
    )
    app.state.settings = settings
    app.state.api_settings = api_settings
    app.state.services = {}
    app.state.services_lock = threading.Lock()
    install_error_handlers(app)
    _install_json_error_handler(app)

    # SOV_API_TOKEN, or (when reads are closed) a consumer's access token from /v1/auth/siwe.
    read_guard = [Depends(auth_routes.require_read_or_access_token)]
    app.include_router(health.router, prefix="/v1")
    app.include_router(datasets.router, prefix="/v1", dependencies=read_guard)
    app.include_router(grants.router, prefix="/v1", dependencies=read_guard)
    app.include_router(jobs.router, prefix="/v1", dependencies=read_guard)
    app.include_router(audit.router, prefix="/v1", dependencies=read_guard)
    app.include_router(events.router, prefix="/v1", dependencies=read_guard)
    # Sign-in and the consumer read carry their own credentials (a SIWE signature, an access token).
    app.include_router(auth_routes.router, prefix="/v1")
    app.include_router(access.router, prefix="/v1")
    app.include_router(web.config_router, prefix="/v1", dependencies=read_guard)
    app.include_router(web.router)
    app.add_middleware(JsonContentTypeMiddleware, form_paths=auth_routes.FORM_PATHS)
    # Added last, so it runs first: an oversized body is refused before anything else looks at it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=api_settings.max_body_bytes)
    return app
