"""The HTTP transport: retries only what is transient, logs RPCs at DEBUG without keys."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator

import pytest

from ledger.chain.transport import RetryPolicy, Transport, make_provider
from ledger.errors import RPCError, UnreachableError
from ledger.keys import dev_account
from tests.conftest import DeployedChain


class _Status(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the status in the server's `status` attribute (no JSON)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.hits += 1  # type: ignore[attr-defined]
        status = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"oops")

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture()
def status_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Status)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_http_503_is_retried_then_reported_with_the_url(status_server: http.server.HTTPServer) -> None:
    status_server.status = 503  # type: ignore[attr-defined]
    url = _url(status_server)
    transport = Transport(make_provider(url), url, RetryPolicy(attempts=3, backoff_s=0.01))
    with pytest.raises(UnreachableError, match=f"chain node at {url} is unreachable .*after 3 attempt"):
        transport.request("eth_chainId", [])
    assert status_server.hits == 3  # type: ignore[attr-defined]


def test_http_404_is_not_retried(status_server: http.server.HTTPServer) -> None:
    status_server.status = 404  # type: ignore[attr-defined]
    url = _url(status_server)
    transport = Transport(make_provider(url), url, RetryPolicy(attempts=5, backoff_s=0.01))
    with pytest.raises(RPCError, match=f"{url} answered HTTP 404 to eth_chainId"):
        transport.request("eth_chainId", [])
    assert status_server.hits == 1  # type: ignore[attr-defined]


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=0.1, backoff_factor=2.0, max_backoff_s=0.3)
    assert list(policy.delays()) == [0.1, 0.2, 0.3, 0.3]
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_rpcs_logged_at_debug_never_the_key(
    deployed: DeployedChain, caplog: pytest.LogCaptureFixture
) -> None:
    owner = deployed[1]
    with caplog.at_level(logging.DEBUG, logger="ledger"):
        owner.register_dataset(hashlib.sha256(b"logged").digest())
    methods = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("rpc ")]
    assert {"eth_estimateGas", "eth_sendRawTransaction", "eth_getTransactionReceipt"} <= set(methods)
    assert bytes(dev_account(1).key).hex() not in caplog.text


def test_a_transaction_reads_its_gas_and_nonce_in_one_round_trip(deployed: DeployedChain) -> None:
    """estimateGas and the pending nonce go in one batch; the nonce is not read again on its own."""
    owner = deployed[2]
    provider = owner.transport.provider
    bodies: list[bytes] = []
    post = provider.post  # type: ignore[attr-defined]

    def counting(body: bytes) -> bytes:
        bodies.append(body)
        return post(body)  # type: ignore[no-any-return]

    provider.post = counting  # type: ignore[attr-defined]
    try:
        for label in (b"batched-1", b"batched-2"):
            owner.register_dataset(hashlib.sha256(label).digest())
    finally:
        del provider.post  # type: ignore[attr-defined]
    batched = [b for b in bodies if b"eth_estimateGas" in b]
    assert len(batched) == 2 and all(b"eth_getTransactionCount" in b for b in batched)
    assert not [b for b in bodies if b"eth_getTransactionCount" in b and b"eth_estimateGas" not in b]
    assert owner.dataset_state(hashlib.sha256(b"batched-2").digest()).owner == owner.address


def test_a_provider_without_batches_sends_one_request_at_a_time(deployed: DeployedChain) -> None:
    """Without a provider that posts a batch body, the gas and the nonce are read one by one."""
    from ledger.chain.sender import TransactionSender

    class OneByOne:
        def __init__(self, inner: object) -> None:
            self.make_request = inner.make_request  # type: ignore[attr-defined]

    transport = Transport(OneByOne(deployed[3].transport.provider), deployed.rpc_url)  # type: ignore[arg-type]
    assert transport.batch([("eth_chainId", [])]) is None
    sender = TransactionSender(transport, deployed[3].chain_id, dev_account(3), deployed[3].decoder)
    before = int(transport.request("eth_getTransactionCount", [dev_account(3).address, "latest"]), 16)
    receipt = sender.transact(dev_account(4).address, "0x", "plain transfer")
    assert int(receipt["status"], 16) == 1
    after = int(transport.request("eth_getTransactionCount", [dev_account(3).address, "latest"]), 16)
    assert after == before + 1
