"""`/v1/webhooks` and `/v1/events/stream` in-process over a real anvil: typed refusals that store
nothing, the subscription lifecycle, SSE resumption, and the signature scheme receivers verify."""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_kit import DEMO_TYPES, DemoFacts, run_demo
from fastapi.testclient import TestClient
from pydantic import SecretStr
from receiver_kit import Receiver

from api.app import create_app
from api.auth import ApiSettings
from api.webhooks import DB_NAME, SignatureError, WebhookSettings, backoff_delay, sign, verify
from ledger.deploy import save_deployment
from ledger.devnet import free_port
from ledger.events import EventFeed
from ledger.purposes import purpose_id
from ledger.settings import Settings
from tests.conftest import DeployedChain

TOKEN = "events-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = secrets.token_urlsafe(24)
RECEIVER = "http://127.0.0.1:9/hooks"


@pytest.fixture()
def home(tmp_path: Path, deployed: DeployedChain) -> Path:
    path = tmp_path / "home"
    save_deployment(Settings(home=path), deployed.deployment)
    return path


@pytest.fixture()
def client(home: Path, deployed: DeployedChain) -> Iterator[TestClient]:
    app = create_app(
        Settings(home=home, rpc_url=deployed.rpc_url), ApiSettings(token=SecretStr(TOKEN), account="dev0")
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture()
def demo(deployed: DeployedChain) -> DemoFacts:
    return run_demo(deployed.clients)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"secret": SECRET}, "invalid_webhook_url", "url is required"),
        ({"url": "http://exa mple.org/", "secret": SECRET}, "invalid_webhook_url", "contains whitespace"),
        ({"url": "ftp://example.org/x", "secret": SECRET}, "invalid_webhook_url", "must start with http://"),
        ({"url": "http:///hooks", "secret": SECRET}, "invalid_webhook_url", "names no host"),
        ({"url": "https://me:pw@example.org/", "secret": SECRET}, "invalid_webhook_url", "credentials"),
        ({"url": "http://example.org:99999/", "secret": SECRET}, "invalid_webhook_url", "is malformed"),
        ({"url": RECEIVER}, "missing_webhook_secret", "secret is required"),
        ({"url": RECEIVER, "secret": ""}, "missing_webhook_secret", "secret is required"),
        ({"url": RECEIVER, "secret": "hunter2"}, "weak_webhook_secret", "secret is 7 characters"),
        ({"url": RECEIVER, "secret": "whsec_not*base64*at*all"}, "invalid_webhook_secret", "base64"),
        (
            {"url": RECEIVER, "secret": SECRET, "types": ["grnt"]},
            "unknown_event_type",
            "did you mean 'grant'",
        ),
    ],
)
def test_bad_subscription_input_is_refused_with_a_typed_error_and_nothing_is_stored(
    client: TestClient, home: Path, body: dict[str, Any], code: str, message: str
) -> None:
    response = client.post("/v1/webhooks", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"], error
    assert SECRET not in response.text
    assert client.get("/v1/webhooks", headers=AUTH).json() == {"subscriptions": []}
    assert not (home / DB_NAME).exists()


def test_subscriptions_need_the_token_and_never_show_their_secret(client: TestClient, home: Path) -> None:
    refused = client.post("/v1/webhooks", json={"url": RECEIVER, "secret": SECRET})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/webhooks").status_code == 401
    assert not (home / DB_NAME).exists()

    created = client.post(
        "/v1/webhooks", json={"url": RECEIVER, "secret": SECRET, "types": ["grant", "round"]}, headers=AUTH
    )
    assert created.status_code == 201, created.text
    subscription = created.json()["subscription"]
    assert created.headers["location"] == f"/v1/webhooks/{subscription['id']}"
    assert subscription["types"] == ["grant", "round"] and subscription["url"] == RECEIVER
    listed = client.get("/v1/webhooks", headers=AUTH)
    assert [s["id"] for s in listed.json()["subscriptions"]] == [subscription["id"]]
    one = client.get(f"/v1/webhooks/{subscription['id']}", headers=AUTH).json()["subscription"]
    assert one["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    for text in (created.text, listed.text, json.dumps(one)):
        assert SECRET not in text
    assert client.delete(f"/v1/webhooks/{subscription['id']}", headers=AUTH).status_code == 204
    gone = client.get(f"/v1/webhooks/{subscription['id']}", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "webhook_not_found"
    assert client.delete(f"/v1/webhooks/{subscription['id']}", headers=AUTH).status_code == 404


def _sse(text: str) -> list[dict[str, Any]]:
    messages = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields and "id" in fields:
            messages.append(
                {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return messages


def test_the_stream_resumes_from_last_event_id_before_cursor_and_from_block(
    client: TestClient, demo: DemoFacts
) -> None:
    until = {"until_block": str(demo.last_block)}
    whole = _sse(client.get("/v1/events/stream", params={"from_block": "0", **until}).text)
    assert [m["event"] for m in whole] == DEMO_TYPES
    assert all(m["id"] == m["data"]["id"] and m["data"]["specversion"] == "1.0" for m in whole)
    ids = [m["id"] for m in whole]
    after_cursor = _sse(client.get("/v1/events/stream", params={"cursor": ids[1], **until}).text)
    assert [m["id"] for m in after_cursor] == ids[2:]
    # An EventSource's reconnect: Last-Event-ID wins over the query the page was opened with.
    reconnect = client.get(
        "/v1/events/stream", params={"from_block": "0", **until}, headers={"Last-Event-ID": ids[5]}
    )
    assert [m["id"] for m in _sse(reconnect.text)] == ids[6:]
    revoked = _sse(
        client.get("/v1/events/stream", params={"from_block": "0", "types": "grant.revoked", **until}).text
    )
    assert [m["data"]["blocknumber"] for m in revoked] == [demo.revoke_block]


@pytest.mark.parametrize(
    ("params", "headers", "code"),
    [
        ({"cursor": "not-an-id"}, {}, "invalid_cursor"),
        ({}, {"Last-Event-ID": "1:2:3:0123456789abcdef"}, "invalid_cursor"),
        ({}, {"Last-Event-ID": "31337:999999:0:0123456789abcdef"}, "invalid_cursor"),  # a reset devnet
        ({"types": "grants"}, {}, "unknown_event_type"),
        ({"from_block": "1", "cursor": "31337:2:0:0123456789abcdef"}, {}, "invalid_request"),
        ({"from_block": "-1"}, {}, "invalid_request"),
    ],
)
def test_bad_stream_requests_are_typed_errors_before_any_event(
    client: TestClient, params: dict[str, str], headers: dict[str, str], code: str
) -> None:
    response = client.get("/v1/events/stream", params={**params, "until_block": "0"}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_signatures_verify_only_for_the_same_body_secret_and_a_fresh_timestamp() -> None:
    body = b'{"id":"31337:4:1:0123456789abcdef"}'
    now = int(time.time())
    headers = {
        "webhook-id": "31337:4:1:0123456789abcdef",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "31337:4:1:0123456789abcdef", now, body),
    }
    assert verify(SECRET, headers, body) == "31337:4:1:0123456789abcdef"
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(SECRET, headers, body.replace(b"4", b"5"))
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(SECRET + "x", headers, body)
    with pytest.raises(SignatureError, match="more than 300 s from now"):
        verify(SECRET, headers, body, now=now + 301)  # a replay, minutes later
    with pytest.raises(SignatureError, match="missing header webhook-signature"):
        verify(SECRET, {k: v for k, v in headers.items() if k != "webhook-signature"}, body)
    # A Standard Webhooks secret (whsec_ + base64) keys the HMAC with its decoded bytes.
    raw = secrets.token_bytes(24)
    standard = "whsec_" + base64.b64encode(raw).decode()
    assert sign(standard, "m", now, body) != sign(base64.b64encode(raw).decode(), "m", now, body)
    assert verify(
        standard, {**headers, "webhook-signature": sign(standard, headers["webhook-id"], now, body)}, body
    )


def test_the_signature_matches_the_standard_webhooks_published_example() -> None:
    # The example in the Standard Webhooks specification (secret, id, timestamp, body -> signature).
    body = b'{"test": 2432232314}'
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_webhook_subscriber_gets_a_revocation_once_one_block_covers_it(
    home: Path, deployed: DeployedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOV_WEBHOOK_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("SOV_WEBHOOK_CONFIRMATIONS", "1")
    lab, owner = deployed[0], deployed[1]
    assert lab.address is not None
    dataset, _ = owner.register_dataset(secrets.token_bytes(32))
    now = lab.latest_block().timestamp
    owner.issue_grant(dataset, lab.address, "ai-training", now - 10, now + 3600)
    receiver = Receiver(port=free_port(), secret=SECRET.encode())
    receiver.start()
    app = create_app(
        Settings(home=home, rpc_url=deployed.rpc_url), ApiSettings(token=SecretStr(TOKEN), account="dev0")
    )
    try:
        with TestClient(app) as client:
            body = {"url": receiver.url, "secret": SECRET, "types": ["grant.revoked"]}
            assert client.post("/v1/webhooks", json=body, headers=AUTH).status_code == 201
            revoke = owner.revoke_grant(dataset, lab.address, purpose_id("ai-training"))
            time.sleep(1.5)
            assert receiver.requests == []  # one confirmation asked for: not yet
            lab.transport.request("evm_mine", [])
            receiver.wait(lambda: len(receiver.accepted()) == 1, 10, "the revocation")
    finally:
        receiver.stop()
    (event,) = receiver.events()
    assert (
        event["type"] == "org.sovereign-ledger.grant.revoked" and event["blocknumber"] == revoke.block_number
    )
    assert all(r.verified for r in receiver.requests)


def test_an_event_the_receiver_keeps_refusing_is_retried_with_growing_delays_then_dropped(
    home: Path, deployed: DeployedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = 0.2
    for name, value in {
        "POLL_INTERVAL": "0.05",
        "RETRY_BASE": str(base),
        "RETRY_MAX": "5",
        "MAX_ATTEMPTS": "4",
    }.items():
        monkeypatch.setenv(f"SOV_WEBHOOK_{name}", value)
    # A receiver bug on one event (the first it sees): it must not hold back the rest.
    receiver = Receiver(port=free_port(), secret=SECRET.encode(), refuse_first=400)
    receiver.start()
    app = create_app(
        Settings(home=home, rpc_url=deployed.rpc_url), ApiSettings(token=SecretStr(TOKEN), account="dev0")
    )
    try:
        with TestClient(app) as client:
            start = deployed[0].latest_block().number + 1
            body = {"url": receiver.url, "secret": SECRET, "from_block": start}
            created = client.post("/v1/webhooks", json=body, headers=AUTH).json()["subscription"]
            feed_ids = [e.id for e in _demo_events(deployed, start)]
            receiver.wait(lambda: len(receiver.accepted()) == len(feed_ids) - 1, 30, "the other events")

            # The receiver records a request before the service has booked its 2xx: wait for that.
            def booked() -> Any:
                return client.get(f"/v1/webhooks/{created['id']}", headers=AUTH).json()["subscription"]

            receiver.wait(lambda: booked()["deliveries"]["pending"] == 0, 10, "the bookkeeping")
            counts = booked()
    finally:
        receiver.stop()
    attempts = [r for r in receiver.requests if r.event_id == feed_ids[0]]
    assert [r.answered for r in attempts] == [400] * 4  # SOV_WEBHOOK_MAX_ATTEMPTS, then dropped
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # Each wait is at least half its exponential ceiling (jitter scales it by 0.5..1).
    assert all(gap >= 0.5 * base * 2**k - 0.02 for k, gap in enumerate(gaps)), gaps
    assert [r.event_id for r in receiver.accepted()] == feed_ids[1:]
    assert counts["deliveries"] == {"pending": 0, "delivered": len(feed_ids) - 1, "failed": 1}
    settings = WebhookSettings(retry_base=1.0, retry_max=30.0)
    rng = random.Random(7)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (40, 30.0)):
        delays = [backoff_delay(failures, settings, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not fixed


def _demo_events(deployed: DeployedChain, start: int) -> list[Any]:
    facts = run_demo(deployed.clients)
    return EventFeed(deployed[0]).start_at(start).poll(until_block=facts.last_block)


def test_the_stream_ends_with_a_typed_error_event_when_the_node_goes_away(
    client: TestClient, deployed: DeployedChain, demo: DemoFacts
) -> None:
    answer: dict[str, Any] = {}
    params = {"from_block": "0", "poll_interval": "0.1"}
    reader = threading.Thread(target=lambda: answer.update(r=client.get("/v1/events/stream", params=params)))
    reader.start()
    time.sleep(1.5)
    deployed.node.kill()
    reader.join(timeout=60)
    assert not reader.is_alive()
    response = answer["r"]
    assert response.status_code == 200
    messages = _sse(response.text)
    assert [m["event"] for m in messages] == [m["data"]["type"] for m in messages] == DEMO_TYPES
    blocks = response.text.strip().split("\n\n")
    assert blocks[-1].startswith("event: sov.error\ndata: ")
    error = json.loads(blocks[-1].split("data: ", 1)[1])["error"]
    assert error["code"] == "unreachable" and deployed.rpc_url in error["message"]


def test_a_hanging_receiver_does_not_hold_back_another_subscription(
    home: Path, deployed: DeployedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOV_WEBHOOK_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("SOV_WEBHOOK_TIMEOUT", "5")
    slow = Receiver(port=free_port(), secret=SECRET.encode(), delay=8.0)
    fast = Receiver(port=free_port(), secret=SECRET.encode())
    slow.start()
    fast.start()
    app = create_app(
        Settings(home=home, rpc_url=deployed.rpc_url), ApiSettings(token=SecretStr(TOKEN), account="dev0")
    )
    try:
        with TestClient(app) as client:
            for receiver in (slow, fast):
                body = {"url": receiver.url, "secret": SECRET}
                assert client.post("/v1/webhooks", json=body, headers=AUTH).status_code == 201
            run_demo(deployed.clients)
            fast.wait(lambda: len(fast.accepted()) == len(DEMO_TYPES), 3, "the fast receiver's events")
            assert slow.requests == []  # its first request is still hanging
    finally:
        slow.stop()
        fast.stop()
    assert [e["type"] for e in fast.events()] == DEMO_TYPES
