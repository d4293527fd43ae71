"""Signed webhooks: subscriptions, a persistent delivery queue, and the dispatcher thread.

A subscription names a URL, a secret and optionally event types. The dispatcher reads the
change-event feed (`ledger.events.EventFeed`, the code `sov watch` and the SSE stream use) from
each subscription's cursor, puts every new event in the subscription's queue and advances the
cursor in the same SQLite transaction, then POSTs the queue in chain order. Everything lives in
`$SOV_HOME/webhooks.sqlite`, so a restarted service carries on where it stopped: nothing pending
is lost, nothing delivered is queued again.

**At least once.** A delivery counts when the receiver answers 2xx. Anything else (refused
connection, timeout, 5xx, 4xx) is retried with exponential backoff and jitter: the n-th
consecutive failure waits `min(retry_max, retry_base * 2**(n-1))`, scaled by a random factor in
[0.5, 1]; a success resets it. Deliveries of one subscription go out in chain order, one at a
time; an event that fails `max_attempts` times is marked failed and the queue moves on. A crash
between the receiver's 2xx and the bookkeeping means one more delivery of that event: receivers
deduplicate on `webhook-id` (the CloudEvent's id, stable across retries and restarts).

**Signature** (the Standard Webhooks scheme). Headers of every POST:

    webhook-id: <event id>
    webhook-timestamp: <unix seconds when this attempt was sent>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>

The body is the CloudEvent (structured mode, `Content-Type: application/cloudevents+json`).
The HMAC key is the secret's UTF-8 bytes, or, for a secret written `whsec_<base64>`, the
decoded bytes (so Standard Webhooks libraries verify it as is). A receiver recomputes the HMAC
over the raw body, compares in constant time, and rejects timestamps more than a few minutes
from its clock (a replayed request carries an old timestamp, and changing it breaks the HMAC).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import LedgerError
from ledger.events import ChangeEvent, EventFeed, InvalidCursorError, normalise_types

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient
    from ledger.settings import Settings

log = logging.getLogger(__name__)

DB_NAME = "webhooks.sqlite"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_VERSION = "v1"
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 512
MAX_URL_CHARS = 2048
DEFAULT_TOLERANCE_S = 300


class WebhookSettings(BaseSettings):
    """How the dispatcher polls and retries (`SOV_WEBHOOK_*`)."""

    model_config = SettingsConfigDict(env_prefix="SOV_WEBHOOK_", extra="ignore")

    poll_interval: float = Field(default=1.0, gt=0.0, le=60.0, description="seconds between feed polls")
    retry_base: float = Field(default=1.0, gt=0.0, description="seconds before the first retry")
    retry_max: float = Field(default=300.0, gt=0.0, description="longest wait between retries")
    max_attempts: int = Field(default=20, ge=1, description="attempts before an event is marked failed")
    timeout: float = Field(default=10.0, gt=0.0, description="seconds a receiver has to answer")
    confirmations: int = Field(default=0, ge=0, description="blocks on top of an event before it is sent")
    workers: int = Field(default=8, ge=1, le=64, description="subscriptions served at the same time")


class SubscriptionError(ValueError):
    """Subscription input that cannot be stored; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SignatureError(ValueError):
    """A webhook request whose signature or timestamp does not verify."""


# ----------------------------------------------------------------------------- signing


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, anything else as UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise SubscriptionError(
                "invalid_webhook_secret", "a secret starting with 'whsec_' must continue in base64"
            ) from None
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str:
    """Check a received webhook's headers against its raw body; returns its `webhook-id`.

    Raises `SignatureError` for a missing header, a timestamp outside `tolerance_s` or a
    signature that does not match (any of the space-separated `v1,` signatures may match).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        stamp = lowered["webhook-timestamp"]
        given = lowered["webhook-signature"]
    except KeyError as missing:
        raise SignatureError(f"missing header {missing.args[0]}") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp {stamp[:40]!r} is not unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"webhook-timestamp {timestamp} is more than {tolerance_s} s from now")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in given.split()):
        raise SignatureError("no webhook-signature matches the body")
    return message_id


# ----------------------------------------------------------------------------- validation


def check_url(url: object) -> str:
    """A receiver URL: absolute http(s) with a host, no credentials, no whitespace."""
    if url is None or (isinstance(url, str) and not url.strip()):
        raise SubscriptionError("invalid_webhook_url", "url is required: the receiver's http(s) URL")
    if not isinstance(url, str):
        raise SubscriptionError("invalid_webhook_url", f"url must be a string, got {type(url).__name__}")
    shown = url[:120]
    if len(url) > MAX_URL_CHARS:
        raise SubscriptionError(
            "invalid_webhook_url", f"url is {len(url)} characters; at most {MAX_URL_CHARS}"
        )
    if any(ch.isspace() for ch in url):
        raise SubscriptionError("invalid_webhook_url", f"url {shown!r} contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise SubscriptionError("invalid_webhook_url", f"url {shown!r} is malformed: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise SubscriptionError(
            "invalid_webhook_url", f"url {shown!r} must start with http:// or https:// (got {parts.scheme!r})"
        )
    if not parts.hostname:
        raise SubscriptionError("invalid_webhook_url", f"url {shown!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise SubscriptionError(
            "invalid_webhook_url", "url must not carry credentials; the signature authenticates deliveries"
        )
    if port == 0:
        raise SubscriptionError("invalid_webhook_url", f"url {shown!r} names port 0")
    return url


def check_secret(secret: object) -> str:
    """A signing secret: 16 to 512 characters (or `whsec_` + base64)."""
    if secret is None or (isinstance(secret, str) and not secret):
        raise SubscriptionError(
            "missing_webhook_secret",
            f"secret is required: at least {MIN_SECRET_CHARS} characters the receiver verifies the "
            "HMAC with (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    if not isinstance(secret, str):
        raise SubscriptionError(
            "invalid_webhook_secret", f"secret must be a string, got {type(secret).__name__}"
        )
    if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
        raise SubscriptionError(
            "weak_webhook_secret" if len(secret) < MIN_SECRET_CHARS else "invalid_webhook_secret",
            f"secret is {len(secret)} characters; it must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS}",
        )
    secret_key(secret)
    return secret


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True, slots=True)
class Subscription:
    """A stored subscription (the secret stays in the store)."""

    id: str
    url: str
    types: tuple[str, ...]
    chain_id: int
    next_block: int
    cursor: str | None
    created_at: float
    failures: int
    retry_at: float
    last_error: str | None

    def public(self, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
        """What the API shows of it: never the secret."""
        document: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "types": list(self.types),
            "chain_id": self.chain_id,
            "next_block": self.next_block,
            "cursor": self.cursor,
            "created_at": self.created_at,
            "consecutive_failures": self.failures,
            "last_error": self.last_error,
        }
        if counts is not None:
            document["deliveries"] = dict(counts)
        return document


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queued event for one subscription."""

    seq: int
    subscription_id: str
    event_id: str
    body: str
    attempts: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, types TEXT NOT NULL,
    chain_id INTEGER NOT NULL, next_block INTEGER NOT NULL, cursor TEXT, created_at REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0, retry_at REAL NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, subscription_id TEXT NOT NULL, event_id TEXT NOT NULL,
    body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created_at REAL NOT NULL, delivered_at REAL,
    UNIQUE (subscription_id, event_id));
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (subscription_id, status, seq);
"""


class WebhookStore:
    """Subscriptions and their delivery queues in one SQLite file (WAL; a connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_settings(cls, settings: Settings) -> WebhookStore:
        """The store under `SOV_HOME`."""
        return cls(settings.home / DB_NAME)

    @contextmanager
    def _db(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        fresh = not self.path.exists()
        if fresh and not write:
            # Nothing was ever subscribed: read an empty in-memory schema instead of creating a file.
            db = sqlite3.connect(":memory:")
            db.executescript(_SCHEMA)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            if fresh:
                os.chmod(self.path, 0o600)  # it holds the signing secrets
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        db.row_factory = sqlite3.Row
        try:
            if write:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            else:
                yield db
        finally:
            db.close()

    @staticmethod
    def _subscription(row: sqlite3.Row) -> Subscription:
        return Subscription(
            id=row["id"],
            url=row["url"],
            types=tuple(json.loads(row["types"])),
            chain_id=row["chain_id"],
            next_block=row["next_block"],
            cursor=row["cursor"],
            created_at=row["created_at"],
            failures=row["failures"],
            retry_at=row["retry_at"],
            last_error=row["last_error"],
        )

    def create(
        self, *, url: object, secret: object, types: Sequence[str], chain_id: int, next_block: int
    ) -> Subscription:
        """Validate and store a subscription; raises `SubscriptionError` (nothing stored) on bad input."""
        checked_url = check_url(url)
        checked_secret = check_secret(secret)
        try:
            checked_types = normalise_types(types)
        except ValueError as error:
            raise SubscriptionError("unknown_event_type", str(error)) from None
        subscription_id = "wh_" + secrets.token_hex(12)
        with self._db(write=True) as db:
            db.execute(
                "INSERT INTO subscriptions (id, url, secret, types, chain_id, next_block, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    subscription_id,
                    checked_url,
                    checked_secret,
                    json.dumps(list(checked_types)),
                    chain_id,
                    next_block,
                    time.time(),
                ),
            )
        found = self.get(subscription_id)
        assert found is not None
        return found

    def get(self, subscription_id: str) -> Subscription | None:
        """One subscription, or None."""
        with self._db() as db:
            row = db.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
        return None if row is None else self._subscription(row)

    def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM subscriptions ORDER BY created_at, id").fetchall()
        return [self._subscription(r) for r in rows]

    def secret(self, subscription_id: str) -> str | None:
        """The signing secret of a subscription (for the dispatcher only)."""
        with self._db() as db:
            row = db.execute("SELECT secret FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
        return None if row is None else str(row["secret"])

    def delete(self, subscription_id: str) -> bool:
        """Remove a subscription and its queue; False when there was none."""
        with self._db(write=True) as db:
            gone = db.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,)).rowcount
            db.execute("DELETE FROM deliveries WHERE subscription_id = ?", (subscription_id,))
        return bool(gone)

    def counts(self, subscription_id: str) -> dict[str, int]:
        """Deliveries by status: pending, delivered, failed."""
        out = {"pending": 0, "delivered": 0, "failed": 0}
        with self._db() as db:
            for row in db.execute(
                "SELECT status, COUNT(*) AS n FROM deliveries WHERE subscription_id = ? GROUP BY status",
                (subscription_id,),
            ):
                out[row["status"]] = row["n"]
        return out

    def enqueue(
        self, subscription_id: str, events: Sequence[ChangeEvent], next_block: int, cursor: str | None
    ) -> int:
        """Queue events (each id once per subscription) and move the cursor, in one transaction."""
        now = time.time()
        with self._db(write=True) as db:
            if db.execute("SELECT 1 FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone() is None:
                return 0  # unsubscribed while its events were read
            added = 0
            for event in events:
                added += db.execute(
                    "INSERT OR IGNORE INTO deliveries (subscription_id, event_id, body, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (subscription_id, event.id, event.to_json(), now),
                ).rowcount
            db.execute(
                "UPDATE subscriptions SET next_block = ?, cursor = COALESCE(?, cursor) WHERE id = ?",
                (next_block, cursor, subscription_id),
            )
        return added

    def next_pending(self, subscription_id: str) -> Delivery | None:
        """The oldest undelivered event of a subscription."""
        with self._db() as db:
            row = db.execute(
                "SELECT seq, subscription_id, event_id, body, attempts FROM deliveries "
                "WHERE subscription_id = ? AND status = 'pending' ORDER BY seq LIMIT 1",
                (subscription_id,),
            ).fetchone()
        return None if row is None else Delivery(**dict(row))

    def delivered(self, delivery: Delivery) -> None:
        """Record a 2xx answer; the subscription's failure streak ends."""
        with self._db(write=True) as db:
            db.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, "
                "last_error = NULL WHERE seq = ?",
                (time.time(), delivery.seq),
            )
            db.execute(
                "UPDATE subscriptions SET failures = 0, retry_at = 0, last_error = NULL WHERE id = ?",
                (delivery.subscription_id,),
            )

    def failed_attempt(self, delivery: Delivery, error: str, retry_at: float, *, give_up: bool) -> None:
        """Record a failed attempt: retry the subscription's queue at `retry_at` (or drop the event)."""
        with self._db(write=True) as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, status = ? WHERE seq = ?",
                (error[:500], "failed" if give_up else "pending", delivery.seq),
            )
            db.execute(
                "UPDATE subscriptions SET failures = failures + 1, retry_at = ?, last_error = ? WHERE id = ?",
                (retry_at, error[:500], delivery.subscription_id),
            )


# ----------------------------------------------------------------------------- the dispatcher


def backoff_delay(failures: int, settings: WebhookSettings, rng: random.Random) -> float:
    """Seconds to wait after `failures` consecutive failures: exponential, capped, with jitter."""
    ceiling = float(min(settings.retry_max, settings.retry_base * 2.0 ** max(failures - 1, 0)))
    return ceiling * rng.uniform(0.5, 1.0)


class WebhookDispatcher:
    """A daemon thread that feeds every subscription's queue from the chain and delivers it.

    Each subscription is served by a worker of a small pool, one worker per subscription at a
    time: a receiver that hangs until the timeout delays its own queue, not the others'.
    """

    def __init__(self, settings: Settings, webhook_settings: WebhookSettings | None = None) -> None:
        self.settings = settings
        self.config = webhook_settings or WebhookSettings()
        self.store = WebhookStore.for_settings(settings)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._client: LedgerClient | None = None
        self._feeds: dict[str, EventFeed] = {}
        self._rng = random.Random()
        self._http: Any = None
        self._outage = False

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="sov-webhook")
            self._thread = threading.Thread(target=self._run, name="sov-webhooks", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Poll now (a subscription was added)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the threads; pending deliveries stay queued for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.poll_interval + 5)
            self._thread = None
        if self._pool is not None:
            # Requests in flight finish (bounded by the timeout); queued work is dropped, not lost.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except (LedgerError, OSError) as error:
                self._trouble(error)
            except Exception:  # a bug: the thread must outlive it, with the traceback in the log
                log.exception("webhook dispatcher tick failed; retrying in %.1f s", self.config.poll_interval)
            self._wake.wait(self.config.poll_interval)
            self._wake.clear()

    def _trouble(self, error: Exception) -> None:
        # The chain or the disk is away: say so once per outage, keep the queue, retry.
        with self._lock:
            first = not self._outage
            self._outage = True
        if first:
            log.warning(
                "webhook dispatcher paused: %s (retrying every %.1f s)", error, self.config.poll_interval
            )

    def tick(self) -> None:
        """One round: each subscription not being served gets a worker (queue new events, deliver)."""
        subscriptions = self.store.subscriptions()
        known = {s.id for s in subscriptions}
        with self._lock:
            for gone in set(self._feeds) - known - self._busy:
                del self._feeds[gone]
        pool = self._pool
        for subscription in subscriptions:
            if self._stop.is_set() or pool is None:
                return
            with self._lock:
                if subscription.id in self._busy:
                    continue
                self._busy.add(subscription.id)
            try:
                pool.submit(self._serve, subscription)
            except RuntimeError:  # the pool shut down meanwhile (stop)
                with self._lock:
                    self._busy.discard(subscription.id)
                return

    def _serve(self, subscription: Subscription) -> None:
        try:
            self._feed(subscription)
            self._deliver(subscription)
            with self._lock:
                self._outage = False
        except (LedgerError, OSError) as error:
            self._trouble(error)
        except Exception:
            log.exception("webhook %s: serving the subscription failed", subscription.id)
        finally:
            with self._lock:
                self._busy.discard(subscription.id)

    def _chain(self) -> LedgerClient:
        with self._lock:
            if self._client is None:
                from ledger.chain.client import LedgerClient

                self._client = LedgerClient.connect(self.settings)
            return self._client

    def _feed(self, subscription: Subscription) -> None:
        feed = self._feeds.get(subscription.id)
        if feed is None:
            feed = EventFeed(self._chain(), confirmations=self.config.confirmations, types=subscription.types)
            try:
                if subscription.cursor is None:
                    raise LookupError("no cursor yet")
                feed.resume_after(subscription.cursor)
            except LookupError:
                feed.start_at(subscription.next_block)
            except InvalidCursorError as error:
                # The chain was reset under the subscription: every event on it now is new.
                log.warning("webhook %s: %s; delivering from the deployment block", subscription.id, error)
                feed.start_at(0)
            self._feeds[subscription.id] = feed
        before = feed.next_block
        events = feed.poll()
        if events or feed.next_block != before:
            added = self.store.enqueue(subscription.id, events, feed.next_block, feed.cursor)
            if added:
                log.info("webhook %s: %d event(s) queued", subscription.id, added)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self.config.timeout,
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=self.config.workers * 2),
                )
            http = self._http
        response = http.post(url, content=body, headers=headers)
        return int(response.status_code)

    def _deliver(self, subscription: Subscription) -> None:
        import httpx

        secret = self.store.secret(subscription.id)
        if secret is None:
            return
        failures = subscription.failures
        retry_at = subscription.retry_at
        while not self._stop.is_set():
            if time.time() < retry_at:
                return
            delivery = self.store.next_pending(subscription.id)
            if delivery is None:
                return
            body = delivery.body.encode()
            timestamp = int(time.time())
            headers = {
                "content-type": CONTENT_TYPE,
                "webhook-id": delivery.event_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, delivery.event_id, timestamp, body),
                "user-agent": "sovereign-ledger-webhooks/1",
            }
            try:
                status = self._post(subscription.url, body, headers)
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                self.store.delivered(delivery)
                failures = 0
                continue
            failures += 1
            give_up = delivery.attempts + 1 >= self.config.max_attempts
            retry_at = time.time() + backoff_delay(failures, self.config, self._rng)
            self.store.failed_attempt(delivery, error, retry_at, give_up=give_up)
            log.info(
                "webhook %s: %s for %s (attempt %d)%s",
                subscription.id,
                error,
                delivery.event_id,
                delivery.attempts + 1,
                "; giving up on it" if give_up else "",
            )
            if not give_up:
                return
