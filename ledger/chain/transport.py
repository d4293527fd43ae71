"""JSON-RPC transport: one place for retries of transient failures, logging and node errors.

Requests go straight to the web3 provider (`provider.make_request`), skipping web3's
middleware onion: the default `validation` middleware alone sends an extra `eth_chainId`
around every `eth_call`. The chain id is read once by the client and pinned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from web3 import IPCProvider, Web3
from web3.providers.base import BaseProvider

from ledger.chain.http import HTTPStatusError, KeepAliveHTTPProvider
from ledger.errors import ConfigurationError, InsufficientFundsError, RPCError, UnreachableError

log = logging.getLogger("ledger.chain.rpc")

# Errors that mean "the request may not have reached the node": safe to retry for reads,
# and for a signed transaction (resending the same bytes is idempotent by tx hash).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    FileNotFoundError,  # IPC socket not there (yet)
    socket.timeout,
    TimeoutError,
)
TRANSIENT_HTTP_STATUS = frozenset({429, 502, 503, 504})
# A batch that fails so is sent again one request at a time (ValueError: not JSON, a proxy's page).
_BATCH_FAILURES: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, HTTPStatusError, ValueError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that failed in transport (never a node error).

    `attempts` counts the first try. The wait before retry k (1-based) is
    `min(backoff_s * backoff_factor**(k-1), max_backoff_s)`.
    """

    attempts: int = 4
    backoff_s: float = 0.05
    backoff_factor: float = 3.0
    max_backoff_s: float = 1.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts (one fewer than `attempts`)."""
        for k in range(max(self.attempts - 1, 0)):
            yield min(self.backoff_s * self.backoff_factor**k, self.max_backoff_s)


NO_RETRY = RetryPolicy(attempts=1)


def make_provider(rpc_url: str, timeout_s: float = 30.0) -> BaseProvider:
    """A web3 provider for an `http(s)://` URL or an IPC socket path, without web3's own retries.

    HTTP goes through `KeepAliveHTTPProvider` (a kept-alive `http.client` connection per
    thread), not web3's `requests`-based `HTTPProvider`: see `ledger.chain.http`.
    """
    if rpc_url.startswith(("http://", "https://")):
        return KeepAliveHTTPProvider(rpc_url, timeout_s)
    if rpc_url.startswith(("ws://", "wss://")):
        raise ConfigurationError(
            f"RPC URL {rpc_url}: WebSocket is async-only in web3 8; "
            "use the node's http:// URL or its IPC path"
        )
    return IPCProvider(rpc_url.removeprefix("ipc://"), timeout=int(max(timeout_s, 1)))


def make_web3(provider: BaseProvider) -> Web3:
    """A `Web3` for callers that want web3's API, minus the middleware that costs round trips."""
    w3 = Web3(provider)
    for name in ("validation", "ens_name_to_address", "gas_price_strategy"):
        with contextlib.suppress(ValueError):
            w3.middleware_onion.remove(name)
    return w3


class Transport:
    """Sends JSON-RPC requests with a `RetryPolicy`; node errors become `RPCError`."""

    def __init__(self, provider: BaseProvider, rpc_url: str, retry: RetryPolicy | None = None) -> None:
        self.provider = provider
        self.rpc_url = rpc_url
        self.retry = retry or RetryPolicy()

    def request(self, method: str, params: list[Any], retry: RetryPolicy | None = None) -> Any:
        """The `result` of `method(params)`; raises `RPCError` or `UnreachableError`."""
        policy = retry or self.retry
        delays = policy.delays()
        while True:
            try:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("rpc %s %s", method, _short(params))
                response = self.provider.make_request(method, params)  # type: ignore[arg-type]
                break
            except (requests.HTTPError, HTTPStatusError) as error:
                if isinstance(error, HTTPStatusError):
                    status = error.status
                else:
                    status = error.response.status_code if error.response is not None else 0
                if status not in TRANSIENT_HTTP_STATUS:
                    raise RPCError(
                        f"{self.rpc_url} answered HTTP {status} to {method}", method=method, url=self.rpc_url
                    ) from error
                cause: BaseException = error
            except TRANSIENT_ERRORS as error:
                cause = error
            delay = next(delays, None)
            if delay is None:
                raise UnreachableError(
                    f"chain node at {self.rpc_url} is unreachable ({method} failed after {policy.attempts} "
                    f"attempt(s): {type(cause).__name__}: {cause}); is the node running? "
                    "`sov devnet up` starts the embedded devnet"
                ) from cause
            log.debug("rpc %s transient failure (%s), retrying in %.3f s", method, cause, delay)
            time.sleep(delay)
        return self.result(method, response)

    def result(self, method: str, response: Mapping[str, Any]) -> Any:
        """The `result` of one JSON-RPC response to `method`; its `error` raised as `request` raises it."""
        if "error" in response:
            error_obj = dict(response["error"])
            message = str(error_obj.get("message", ""))
            code = error_obj.get("code")
            log.debug("rpc %s error %s %s", method, code, message)
            kind = InsufficientFundsError if "insufficient funds" in message.lower() else RPCError
            raise kind(
                f"{method} failed at {self.rpc_url}: {message} (code {code})",
                method=method,
                code=int(code) if isinstance(code, int) else None,
                url=self.rpc_url,
                error=error_obj,
            )
        return response["result"]

    def batch(self, requests: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]] | None:
        """The raw responses of one JSON-RPC batch in request order, or None when it could not be had.

        One round trip for several requests, over a provider that can post a body (the
        keep-alive HTTP one). None (then send them one by one with `request`, which retries
        and explains) for other providers, a transport failure, or an answer that is not a
        complete batch; nothing is retried here.
        """
        post = getattr(self.provider, "post", None)
        if post is None:
            return None
        body = [{"jsonrpc": "2.0", "method": m, "params": p, "id": i} for i, (m, p) in enumerate(requests)]
        if log.isEnabledFor(logging.DEBUG):
            for method, params in requests:
                log.debug("rpc %s %s (batched)", method, _short(params))
        try:
            raw = json.loads(post(json.dumps(body).encode()))
        except _BATCH_FAILURES:
            return None
        if not isinstance(raw, list):
            return None
        # Batch answers may come in any order; the ids put them back.
        by_id = {item.get("id"): item for item in raw if isinstance(item, dict)}
        found = [by_id.get(i) for i in range(len(requests))]
        if any(answer is None or ("result" not in answer and "error" not in answer) for answer in found):
            return None
        return [dict(answer) for answer in found if answer is not None]


def _short(params: list[Any]) -> str:
    text = repr(params)
    return text if len(text) <= 200 else text[:200] + "..."
