"""A real HTTP webhook receiver for tests: it verifies every request's HMAC itself (with `hmac`,
not the service's code), records what it got, and can answer 500 or be shut down (connections
refused) and started again on the same port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as it arrived."""

    event_id: str
    timestamp: int
    body: bytes
    verified: bool
    answered: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    """Listens on 127.0.0.1:`port` while up; `status` is what it answers to a verified request."""

    port: int
    secret: bytes
    status: int = 200
    delay: float = 0.0  # seconds to sit on each request before answering (a hanging receiver)
    refuse_first: int | None = None  # answer this to every request for the first event id seen
    poison: str | None = None
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sov"

    def expected_signature(self, event_id: str, timestamp: int, body: bytes) -> str:
        mac = hmac.new(self.secret, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                event_id = self.headers.get("webhook-id", "")
                stamp = int(self.headers.get("webhook-timestamp", "0"))
                signature = self.headers.get("webhook-signature", "")
                fresh = abs(time.time() - stamp) <= 300
                time.sleep(receiver.delay)
                verified = fresh and hmac.compare_digest(
                    signature, receiver.expected_signature(event_id, stamp, body)
                )
                with receiver._lock:
                    if receiver.refuse_first is not None and receiver.poison is None:
                        receiver.poison = event_id
                    answer = receiver.status
                    if receiver.refuse_first is not None and event_id == receiver.poison:
                        answer = receiver.refuse_first
                    answer = answer if verified else 401
                    receiver.requests.append(Received(event_id, stamp, body, verified, answer))
                self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the socket: deliveries now get 'connection refused'."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def events(self) -> list[dict[str, Any]]:
        """The CloudEvents of the accepted requests."""
        return [json.loads(r.body) for r in self.accepted()]

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        got = repr(self.requests)[:2000]
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; got {got}")
