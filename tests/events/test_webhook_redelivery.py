"""The acceptance of change notifications, against a real `sov serve` (uvicorn) and a real receiver.

A receiver subscribes, then a real federated job runs (`tests/api/federation_kit.py`: three
hospitals register and grant, the lab trains and commits two rounds, hospital 1 revokes, the
lab commits round 3 without it). The receiver first answers 500, then is shut down (connections
refused) while the service is restarted; only then does it come up. It must end with every
event of the sequence exactly once per id, in chain order, each request verified by its HMAC.
The SSE stream, read live over HTTP, resumes from Last-Event-ID with no duplicate and no gap.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from change_kit import DEMO_TYPES, run_demo
from receiver_kit import Receiver

from api.cli.serve import ServiceProcess
from ledger.deploy import save_deployment
from ledger.devnet import free_port
from ledger.events import EventFeed
from ledger.settings import Settings
from tests.api.federation_kit import run_federated_job
from tests.conftest import REPO_ROOT, DeployedChain

FEDERATED_TYPES = [
    "org.sovereign-ledger." + t
    for t in (
        *("dataset.registered", "grant.issued") * 3,
        "job.created",
        "round.committed",
        "round.committed",
        "grant.revoked",
        "round.committed",
    )
]


class Service:
    """`sov serve` on a fixed port and home, restartable."""

    def __init__(self, deployed: DeployedChain, tmp_path: Path) -> None:
        self.home = tmp_path / "service-home"
        save_deployment(Settings(home=self.home), deployed.deployment)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.log_dir = tmp_path
        self.env = {
            "SOV_HOME": str(self.home),
            "SOV_RPC_URL": deployed.rpc_url,
            "SOV_API_TOKEN": self.token,
            "SOV_API_ACCOUNT": "dev9",
            "SOV_WEBHOOK_POLL_INTERVAL": "0.2",
            "SOV_WEBHOOK_RETRY_BASE": "0.2",
            "SOV_WEBHOOK_RETRY_MAX": "1.0",
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.process: ServiceProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> None:
        self.starts += 1
        self.process = ServiceProcess(self.env, self.port, self.log_dir / f"service-{self.starts}.log")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture()
def service(deployed: DeployedChain, tmp_path: Path) -> Iterator[Service]:
    running = Service(deployed, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(240)
def test_a_receiver_that_was_down_gets_every_event_once_per_id_verified_by_its_hmac(
    deployed: DeployedChain, service: Service
) -> None:
    secret = secrets.token_urlsafe(32)
    receiver = Receiver(port=free_port(), secret=secret.encode(), status=500)
    receiver.start()
    try:
        created = httpx.post(
            f"{service.url}/v1/webhooks", json={"url": receiver.url, "secret": secret}, headers=service.auth
        )
        assert created.status_code == 201, created.text
        subscription = created.json()["subscription"]
        assert "secret" not in json.dumps(created.json())
        first_block = deployed[0].latest_block().number + 1
        lab_home = service.log_dir / "lab-home"
        save_deployment(Settings(home=lab_home), deployed.deployment)
        job = run_federated_job(Settings(home=lab_home, rpc_url=deployed.rpc_url))
        last_block = deployed[0].latest_block().number

        # Down, first as a 500, then refusing connections across a service restart.
        receiver.wait(lambda: len(receiver.requests) >= 3, 60, "three delivery attempts answered 500")
        assert all(r.verified and r.answered == 500 for r in receiver.requests)
        first_id = receiver.requests[0].event_id
        assert all(r.event_id == first_id for r in receiver.requests)  # in order: the first event first
        receiver.stop()
        time.sleep(1.5)  # attempts now fail with 'connection refused'
        service.stop()
        service.start()
        status = httpx.get(f"{service.url}/v1/webhooks/{subscription['id']}", headers=service.auth).json()
        pending = status["subscription"]["deliveries"]
        assert pending["delivered"] == 0 and pending["pending"] == len(FEDERATED_TYPES), status
        assert status["subscription"]["consecutive_failures"] >= 3
        assert status["subscription"]["last_error"]
        time.sleep(1.0)
        failed_attempts = len(receiver.requests)

        receiver.status = 200
        receiver.start()
        receiver.wait(lambda: len(receiver.accepted()) >= len(FEDERATED_TYPES), 60, "every event delivered")
        time.sleep(2.0)  # anything delivered twice would arrive now
    finally:
        receiver.stop()

    accepted = receiver.accepted()
    ids = [r.event_id for r in accepted]
    assert Counter(ids).most_common(1)[0][1] == 1, Counter(ids)  # exactly once per id
    assert all(r.verified for r in receiver.requests), [r for r in receiver.requests if not r.verified]
    expected = EventFeed(deployed[0]).start_at(first_block).poll(until_block=last_block)
    assert ids == [e.id for e in expected]  # every event, in chain order
    bodies = receiver.events()
    assert [b["type"] for b in bodies] == FEDERATED_TYPES
    revoked = bodies[FEDERATED_TYPES.index("org.sovereign-ledger.grant.revoked")]
    assert revoked["subject"] == f"0x{job.revoked_dataset_id:064x}/{job.lab}/ai-training"
    assert [b["data"]["round"] for b in bodies if b["type"].endswith("round.committed")] == [1, 2, 3]
    assert all(b["id"] == r.event_id for b, r in zip(bodies, accepted, strict=True))
    assert [json.loads(e.to_json()) for e in expected] == bodies
    assert failed_attempts >= 3 and len(receiver.requests) == failed_attempts + len(FEDERATED_TYPES)
    final = httpx.get(f"{service.url}/v1/webhooks/{subscription['id']}", headers=service.auth).json()
    assert final["subscription"]["deliveries"] == {
        "pending": 0,
        "delivered": len(FEDERATED_TYPES),
        "failed": 0,
    }
    assert final["subscription"]["consecutive_failures"] == 0


def _read_sse(response: httpx.Response, count: int) -> list[tuple[str, str, dict[str, object]]]:
    """The first `count` events of an open SSE response: (id, event, data)."""
    out: list[tuple[str, str, dict[str, object]]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields and "id" in fields:
                out.append((fields["id"], fields["event"], json.loads(fields["data"])))
                if len(out) == count:
                    return out
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError(f"the stream ended after {len(out)} of {count} events")


@pytest.mark.timeout(120)
def test_the_sse_stream_resumes_from_last_event_id_without_duplicates_or_gaps(
    deployed: DeployedChain, service: Service
) -> None:
    start = deployed[0].latest_block().number + 1
    params = {"from_block": str(start), "poll_interval": "0.1"}
    with httpx.Client(base_url=service.url, timeout=30) as http:
        with http.stream("GET", "/v1/events/stream", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            run_demo(deployed.clients)
            first = _read_sse(response, 3)
        # The reconnect an EventSource makes: same URL, Last-Event-ID of the last event seen.
        headers = {"Last-Event-ID": first[-1][0]}
        with http.stream("GET", "/v1/events/stream", params=params, headers=headers) as response:
            rest = _read_sse(response, len(DEMO_TYPES) - 3)
    got = first + rest
    assert [event for _, event, _ in got] == DEMO_TYPES
    assert [i for i, _, _ in got] == [d["id"] for _, _, d in got]
    assert len({i for i, _, _ in got}) == len(DEMO_TYPES)
    expected = EventFeed(deployed[0]).start_at(start).poll()
    assert [i for i, _, _ in got] == [e.id for e in expected]


@pytest.mark.timeout(180)
def test_a_service_killed_mid_delivery_delivers_the_rest_after_restart_at_least_once(
    deployed: DeployedChain, service: Service
) -> None:
    secret = secrets.token_urlsafe(32)
    # Each answer takes 0.7 s, so the kill lands while a delivery is in flight.
    receiver = Receiver(port=free_port(), secret=secret.encode(), delay=0.7)
    receiver.start()
    try:
        created = httpx.post(
            f"{service.url}/v1/webhooks", json={"url": receiver.url, "secret": secret}, headers=service.auth
        )
        assert created.status_code == 201, created.text
        start = deployed[0].latest_block().number + 1
        facts = run_demo(deployed.clients)
        receiver.wait(lambda: len(receiver.accepted()) >= 3, 60, "three deliveries")
        assert service.process is not None
        os.killpg(service.process.process.pid, signal.SIGKILL)  # a crash: no shutdown, no bookkeeping
        service.process.process.wait(timeout=10)
        before = len(receiver.accepted())
        service.process = None
        receiver.delay = 0.0
        service.start()
        ids = _ids(deployed, start, facts.last_block)
        receiver.wait(lambda: {r.event_id for r in receiver.accepted()} >= set(ids), 60, "the rest")
        time.sleep(1.5)
    finally:
        receiver.stop()
    accepted = [r.event_id for r in receiver.accepted()]
    assert set(accepted) == set(ids) and before < len(ids)
    repeats = Counter(accepted) - Counter(set(accepted))
    assert sum(repeats.values()) <= 1, repeats  # at most the one in flight at the kill
    assert all(r.verified for r in receiver.requests)
    firsts = list(dict.fromkeys(accepted))
    assert firsts == ids  # still in chain order


def _ids(deployed: DeployedChain, start: int, end: int) -> list[str]:
    return [e.id for e in EventFeed(deployed[0]).start_at(start).poll(until_block=end)]
