"""FastAPI dependencies: injected settings, the per-app service context, and the auth guards.

The dependencies are `async` because they never block: FastAPI runs sync dependencies in its
thread pool, and a hop per dependency per request showed up as latency under load.

`get_settings` and `get_api_settings` return what `create_app` was given; tests replace them
with `app.dependency_overrides`. `Service` owns the long-lived parts (the chain facade, the
event index, the content store), created on first use so the app starts even while the chain
is down (requests then answer 503 naming the URL instead of the process failing to boot).

The operator account (`SOV_API_ACCOUNT`) is loaded for the chain id the node reports, through
`Keystore.account`: a `devN` alias is refused off the devnet, and then every write answers 503
`devnet_key_refused` before anything is signed, while reads keep working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiSettings, check_token
from api.errors import ApiError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient
    from ledger.index import EventIndex
    from ledger.store import ContentStore

T = TypeVar("T")

# Declared so the OpenAPI schema documents bearer auth; the check itself is `check_token`.
bearer_scheme = HTTPBearer(auto_error=False, description="SOV_API_TOKEN of this service")


def chain_url(settings: Settings) -> str:
    """The JSON-RPC endpoint the service talks to (the embedded devnet when none is configured)."""
    from ledger.chain.client import resolve_rpc_url

    return resolve_rpc_url(settings)


def store_url(settings: Settings) -> str:
    """Where the content store lives, for health reports and error messages."""
    return settings.ipfs_api_url if settings.store == "kubo" else f"file://{settings.blockstore_dir}"


class Service:
    """The chain facade, event index and content store one app instance uses.

    The event index is touched only from one dedicated thread: SQLite connections are bound to
    the thread that opened them, and serialising index access also serialises syncs.
    Writes are serialised too, so the operator account's nonces never race.
    """

    def __init__(self, settings: Settings, api_settings: ApiSettings) -> None:
        self.settings = settings
        self.api_settings = api_settings
        self._lock = threading.Lock()
        self.write_lock = threading.Lock()
        self._client: LedgerClient | None = None
        self._operator_error: Exception | None = None
        self._store: ContentStore | None = None
        self._index: EventIndex | None = None
        self._index_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sov-api-index")
        self._last_sync = 0.0
        # The latest block number a grant check saw: checks read at it and learn in the same
        # round trip whether the chain moved on (plain int: assignment is atomic under the GIL).
        self.head: int | None = None

    @property
    def rpc_url(self) -> str:
        """The chain endpoint."""
        return chain_url(self.settings)

    def client(self) -> LedgerClient:
        """The connected facade, signing with the operator account when one is configured and usable."""
        with self._lock:
            if self._client is None:
                from ledger.chain.client import LedgerClient

                reader = LedgerClient.connect(self.settings)
                self._client = self._with_operator(reader)
            return self._client

    def writer(self) -> LedgerClient:
        """The facade, guaranteed to hold the operator's key (refused keys raise here, before signing)."""
        if not self.api_settings.account:
            raise ApiError(
                403,
                "writes_disabled",
                "this service has no operator account configured (set SOV_API_ACCOUNT to a keystore alias)",
            )
        client = self.client()
        if self._operator_error is not None:
            raise self._operator_error
        return client

    def _with_operator(self, reader: LedgerClient) -> LedgerClient:
        """`reader` signing as SOV_API_ACCOUNT on its chain, or `reader` itself when the key is unusable.

        An unusable key is remembered and raised by `writer()`: reads never need it.
        """
        alias = self.api_settings.account
        if not alias:
            return reader
        from ledger.errors import KeystoreError
        from ledger.keys import DevAccountOffDevnetError, Keystore

        password = self.api_settings.account_password
        try:
            account = Keystore(self.settings).account(
                alias, None if password is None else password.get_secret_value(), chain_id=reader.chain_id
            )
        except DevAccountOffDevnetError as error:
            self._operator_error = ApiError(
                503,
                "devnet_key_refused",
                f"the service's operator account (SOV_API_ACCOUNT) is unusable here: {error}",
                {"account": alias, "chain_id": reader.chain_id},
            )
            return reader
        except KeystoreError as error:
            self._operator_error = error
            return reader
        return reader.with_account(account)

    def store(self) -> ContentStore:
        """The content store (local blockstore or Kubo RPC)."""
        with self._lock:
            if self._store is None:
                from ledger.store import open_store

                self._store = open_store(self.settings)
            return self._store

    def index(self, fn: Callable[[EventIndex], T], *, sync: bool = True) -> T:
        """Run `fn(index)` on the index thread, after a sync when the index is older than the interval."""
        client = self.client()
        return self._index_thread.submit(self._on_index_thread, client, fn, sync).result()

    def _on_index_thread(self, client: LedgerClient, fn: Callable[[EventIndex], T], sync: bool) -> T:
        if self._index is None:
            from ledger.index import EventIndex

            self._index = EventIndex(self.settings, client)
        if sync and time.monotonic() - self._last_sync >= self.api_settings.index_sync_interval:
            self._index.sync()
            self._last_sync = time.monotonic()
        return fn(self._index)

    def close(self) -> None:
        """Release the index thread (and the index's database with it)."""
        index = self._index
        if index is not None and hasattr(index, "close"):
            self._index_thread.submit(index.close).result()
        self._index_thread.shutdown(wait=True)


async def get_settings(request: Request) -> Settings:
    """The ledger settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_api_settings(request: Request) -> ApiSettings:
    """The service settings the app was created with."""
    api_settings: ApiSettings = request.app.state.api_settings
    return api_settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]


async def get_service(request: Request, settings: SettingsDep, api_settings: ApiSettingsDep) -> Service:
    """One `Service` per (settings, api_settings) pair, so overridden settings get their own."""
    services: dict[tuple[int, int], Service] = request.app.state.services
    key = (id(settings), id(api_settings))
    with request.app.state.services_lock:
        service = services.get(key)
        if service is None:
            service = services[key] = Service(settings, api_settings)
        return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def require_read(
    request: Request,
    api_settings: ApiSettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Reads pass unless the service closes them behind the token."""
    check_token(request, api_settings, for_write=False)


async def require_write(
    request: Request,
    api_settings: ApiSettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Every write needs the service's bearer token."""
    check_token(request, api_settings, for_write=True)
