"""Opening the chain for a command: the RPC endpoint, the signing account, the deployment."""

from __future__ import annotations

from ledger.chain.client import LedgerClient

from ledger.errors import ConfigurationError
from ledger.keys import Keystore
from ledger.settings import Settings


def open_client(settings: Settings, account: str | None = None) -> LedgerClient:
    """A client on the configured chain (the embedded devnet when no `SOV_RPC_URL` is set)."""
    if settings.rpc_url is None:
        from ledger.devnet import Devnet

        status = Devnet(settings).status()
        if not status.running:
            raise ConfigurationError(
                f"no chain: the embedded devnet under {settings.devnet_dir} is not running "
                "(start it with `sov devnet up`) and SOV_RPC_URL is not set"
            )
        settings = settings.model_copy(update={"rpc_url": status.rpc_url})
    signer = Keystore(settings).account(account) if account else None
    return LedgerClient.connect(settings, signer)
