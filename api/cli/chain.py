"""Opening the chain for a command: the RPC endpoint, the signing account, the deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient
    from ledger.settings import Settings


def open_client(config: Settings, account: str | None = None) -> LedgerClient:
    """A client on the configured chain (`SOV_RPC_URL`, else the embedded devnet).

    With `account`, the client signs as that keystore alias; devnet aliases (`dev0`..)
    are refused on chains that are not devnets.
    """
    from ledger.chain.client import LedgerClient
    from ledger.keys import Keystore

    client = LedgerClient.connect(config)
    if account is None:
        return client
    return client.with_account(Keystore(config).account(account, chain_id=client.chain_id))
