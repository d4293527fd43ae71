"""One typed settings object for everything `ledger` reads from the environment.

Values come from `SOV_*` environment variables (and `$SOV_HOME/config.toml` when present);
code receives a `Settings` instance and never reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The data directory used when `SOV_HOME` is not set."""
    return Path.home() / ".sovereign-ledger"


class Settings(BaseSettings):
    """Where a user's state lives and which chain and content store to talk to."""

    model_config = SettingsConfigDict(env_prefix="SOV_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="data directory (SOV_HOME)")
    rpc_url: str | None = Field(
        default=None,
        description="JSON-RPC endpoint (http(s):// or an IPC path); unset = embedded anvil devnet",
    )
    devnet_port: int = Field(default=8545, description="port of the embedded anvil devnet on 127.0.0.1")
    store: Literal["local", "kubo"] = Field(default="local", description="content store backend")
    ipfs_api_url: str = Field(default="http://127.0.0.1:5001", description="Kubo RPC API base URL")

    @property
    def devnet_dir(self) -> Path:
        """Embedded devnet state and logs."""
        return self.home / "devnet"

    @property
    def keystore_dir(self) -> Path:
        """Encrypted keystore files, one per alias."""
        return self.home / "keystore"

    @property
    def deployments_dir(self) -> Path:
        """Deployment manifests, one per chain id."""
        return self.home / "deployments"

    @property
    def index_path(self) -> Path:
        """SQLite event index."""
        return self.home / "index.sqlite"

    @property
    def blockstore_dir(self) -> Path:
        """Local content store blocks."""
        return self.home / "blocks"
