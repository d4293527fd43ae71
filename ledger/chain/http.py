"""A lean JSON-RPC-over-HTTP provider for web3: one kept-alive `http.client` connection per thread.

web3's `HTTPProvider` goes through `requests`, whose per-request overhead (session, adapters,
header merging, urllib3 pool) costs more than the round trip to a local node: measured here,
~200-350 requests/s through `requests` against ~1,800-3,900/s through `http.client` on the
same anvil. This provider speaks the same JSON-RPC and plugs into `Web3` like any other.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from typing import Any

from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

# A kept-alive connection the server closed while idle fails with one of these on reuse;
# the request never reached the server, so one reconnect-and-resend is safe.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
)


class HTTPStatusError(ConnectionError):
    """The endpoint answered with an HTTP error status instead of a JSON-RPC response."""

    def __init__(self, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{url} answered HTTP {status}: {body[:200]!r}")
        self.status = status


class KeepAliveHTTPProvider(JSONBaseProvider):
    """JSON-RPC over HTTP(S) with a persistent connection per thread."""

    def __init__(self, endpoint_uri: str, timeout_s: float = 30.0) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(endpoint_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {endpoint_uri}")
        self.endpoint_uri = endpoint_uri
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if parts.username:
            import base64

            user = urllib.parse.unquote(parts.username)
            credentials = f"{user}:{urllib.parse.unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._timeout_s = timeout_s
        self._local = threading.local()

    def __str__(self) -> str:
        return f"RPC connection {self.endpoint_uri}"

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = cls(self._host, self._port, timeout=self._timeout_s)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def post(self, body: bytes) -> bytes:
        """POST `body` and return the response body (reconnecting once if the kept-alive socket died)."""
        for attempt in (0, 1):
            reused = getattr(self._local, "connection", None) is not None
            connection = self._connection()
            try:
                connection.request("POST", self._path, body, self._headers)
                response = connection.getresponse()
                data = response.read()
            except _STALE_CONNECTION_ERRORS:
                self._drop_connection()
                if attempt == 0 and reused:
                    continue
                raise
            except BaseException:
                self._drop_connection()
                raise
            if response.will_close:
                self._drop_connection()
            if response.status >= 400 and not data.lstrip().startswith(b"{"):
                raise HTTPStatusError(self.endpoint_uri, response.status, data)
            return data
        raise AssertionError("unreachable")

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        """One JSON-RPC request (web3's provider interface)."""
        return self.decode_rpc_response(self.post(self.encode_rpc_request(method, params)))
