"""`/v1/events/stream` (Server-Sent Events) and `/v1/webhooks` (signed deliveries).

Both serve the change-event feed of `ledger.events` (the code `sov watch` runs), as CloudEvents.
The stream resumes from `Last-Event-ID` (sent by every EventSource on reconnect), a `cursor`
query parameter (an event id) or `from_block`; without any it starts at the next block. Each
SSE message is `id: <event id>`, `event: <CloudEvents type>`, `data: <the CloudEvent JSON>`.
A comment line is sent every 15 s of quiet so proxies keep the connection open.

Webhook subscriptions are writes: they need the service's bearer token, like every write.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError, error_body
from api.routes.deps import ServiceDep, SettingsDep, require_write
from api.schemas import ErrorOut
from api.webhooks import SubscriptionError, WebhookStore, check_secret, check_url
from ledger.errors import LedgerError
from ledger.events import (
    EventFeed,
    InvalidCursorError,
    UnknownEventTypeError,
    normalise_types,
    parse_cursor,
)

router = APIRouter(responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})

KEEPALIVE_S = 15.0
RETRY_MS = 2000


def _types(types: list[str] | None) -> tuple[str, ...]:
    try:
        return normalise_types(types)
    except UnknownEventTypeError as error:
        raise ApiError(422, "unknown_event_type", str(error)) from None


def _sse(event_id: str | None, event: str, data: str) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


@router.get(
    "/events/stream",
    tags=["events"],
    summary="Change events as Server-Sent Events (CloudEvents 1.0 in each data line)",
    response_class=StreamingResponse,
    # An endless stream has no schema a fuzzer can finish a request against; README documents it.
    include_in_schema=False,
)
async def stream(
    request: Request,
    service: ServiceDep,
    from_block: Annotated[int | None, Query(ge=0, description="start at this block")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="resume after this event id")] = None,
    types: Annotated[list[str] | None, Query(description="type filters: grant, grant.revoked, ...")] = None,
    confirmations: Annotated[int, Query(ge=0, le=1000, description="blocks on top of an event")] = 0,
    until_block: Annotated[int | None, Query(ge=0, description="end the stream after this block")] = None,
    poll_interval: Annotated[float, Query(ge=0.05, le=30.0, description="seconds between polls")] = 1.0,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> StreamingResponse:
    """Stream events from `Last-Event-ID`, `cursor`, `from_block` or the next block."""
    filters = _types(types)
    resume = last_event_id if last_event_id else cursor
    if resume is not None and from_block is not None and not last_event_id:
        raise ApiError(422, "invalid_request", "pass either from_block or cursor, not both")
    client = await anyio.to_thread.run_sync(service.client)
    try:
        parsed = None if resume is None else parse_cursor(resume, chain_id=client.chain_id)
    except InvalidCursorError as error:
        raise ApiError(422, "invalid_cursor", str(error)) from None
    feed = EventFeed(client, confirmations=confirmations, types=filters)
    if parsed is not None:
        try:
            await anyio.to_thread.run_sync(feed.resume_after, parsed)
        except InvalidCursorError as error:
            raise ApiError(422, "invalid_cursor", str(error)) from None
    elif from_block is not None:
        feed.start_at(from_block)
    else:
        await anyio.to_thread.run_sync(feed.start_at_head)

    async def messages() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        quiet_since = time.monotonic()
        while True:
            try:
                events = await anyio.to_thread.run_sync(lambda: feed.poll(until_block=until_block))
            except (LedgerError, OSError) as error:
                # Tell the client why, then end: its EventSource reconnects with Last-Event-ID.
                body = error_body("unreachable", f"reading the chain failed: {error}")
                yield _sse(None, "sov.error", json.dumps(body))
                return
            for event in events:
                yield _sse(event.id, event.type, event.to_json())
            if events:
                quiet_since = time.monotonic()
            if until_block is not None and feed.next_block > until_block:
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                quiet_since = time.monotonic()
            if await request.is_disconnected():
                return
            await anyio.sleep(poll_interval)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# ----------------------------------------------------------------------------- webhooks


class WebhookRequest(BaseModel):
    """A subscription: where to POST, the HMAC secret, which events, from which block."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="the receiver's http(s) URL")
    secret: str | None = Field(
        default=None, description="HMAC-SHA256 key, 16 to 512 characters (or whsec_<base64>)"
    )
    types: list[str] = Field(default_factory=list, max_length=32, description="type filters; empty: all")
    from_block: int | None = Field(
        default=None, ge=0, le=2**62, description="first block to deliver (default: the next one)"
    )


class WebhookOut(BaseModel):
    """A subscription as the API shows it (never its secret)."""

    id: str
    url: str
    types: list[str]
    chain_id: int
    next_block: int
    cursor: str | None
    created_at: float
    consecutive_failures: int
    last_error: str | None
    deliveries: dict[str, int] | None = None


class WebhookEnvelope(BaseModel):
    """One subscription."""

    subscription: WebhookOut


class WebhookList(BaseModel):
    """Every subscription."""

    subscriptions: list[WebhookOut]


def _store(settings: Any) -> WebhookStore:
    return WebhookStore.for_settings(settings)


def _refuse(error: SubscriptionError) -> ApiError:
    return ApiError(422, error.code, str(error))


@router.post(
    "/webhooks",
    tags=["webhooks"],
    status_code=201,
    response_model=WebhookEnvelope,
    dependencies=[Depends(require_write)],
    summary="Subscribe a URL to signed webhook deliveries of change events",
)
def create_webhook(
    body: WebhookRequest, request: Request, service: ServiceDep, settings: SettingsDep
) -> JSONResponse:
    """Validate (nothing is stored on bad input), then store; deliveries start with the next poll."""
    try:
        check_url(body.url)
        check_secret(body.secret)
        types = normalise_types(body.types)
    except SubscriptionError as error:
        raise _refuse(error) from None
    except UnknownEventTypeError as error:
        raise ApiError(422, "unknown_event_type", str(error)) from None
    client = service.client()
    dispatcher = getattr(request.app.state, "webhook_dispatcher", None)
    next_block = body.from_block
    if next_block is None:
        # The first block not yet confirmed: everything confirmed from now on is delivered.
        confirmations = dispatcher.config.confirmations if dispatcher is not None else 0
        next_block = max(client.latest_block().number - confirmations, 0) + 1
    try:
        subscription = _store(settings).create(
            url=body.url, secret=body.secret, types=types, chain_id=client.chain_id, next_block=next_block
        )
    except SubscriptionError as error:
        raise _refuse(error) from None
    if dispatcher is not None:
        dispatcher.wake()
    return JSONResponse(
        status_code=201,
        content={"subscription": subscription.public()},
        headers={"Location": f"/v1/webhooks/{subscription.id}"},
    )


@router.get(
    "/webhooks",
    tags=["webhooks"],
    response_model=WebhookList,
    dependencies=[Depends(require_write)],
    summary="Every webhook subscription and its delivery counts",
)
def list_webhooks(settings: SettingsDep) -> dict[str, Any]:
    """Subscriptions are the operator's configuration: listing them needs the token too."""
    store = _store(settings)
    return {"subscriptions": [s.public(store.counts(s.id)) for s in store.subscriptions()]}


def _subscription_id(subscription_id: str) -> str:
    if len(subscription_id) > 64:
        raise ApiError(404, "webhook_not_found", "no webhook subscription has an id that long")
    return subscription_id


@router.get(
    "/webhooks/{subscription_id}",
    tags=["webhooks"],
    response_model=WebhookEnvelope,
    dependencies=[Depends(require_write)],
    summary="One subscription with its pending, delivered and failed counts",
)
def get_webhook(subscription_id: str, settings: SettingsDep) -> dict[str, Any]:
    """404 `webhook_not_found` for an unknown id."""
    store = _store(settings)
    found = store.get(_subscription_id(subscription_id))
    if found is None:
        raise ApiError(404, "webhook_not_found", f"no webhook subscription {subscription_id[:64]!r}")
    return {"subscription": found.public(store.counts(found.id))}


@router.delete(
    "/webhooks/{subscription_id}",
    tags=["webhooks"],
    status_code=204,
    dependencies=[Depends(require_write)],
    summary="Unsubscribe: the subscription and its pending deliveries are removed",
)
def delete_webhook(subscription_id: str, settings: SettingsDep) -> Response:
    """204 when removed, 404 `webhook_not_found` when there was none."""
    if not _store(settings).delete(_subscription_id(subscription_id)):
        raise ApiError(404, "webhook_not_found", f"no webhook subscription {subscription_id[:64]!r}")
    return Response(status_code=204)
