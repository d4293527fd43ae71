"""A SuperNode's ledger identity: its data, its owner's key and its own chain connection.

A SuperNode is started with `--node-config` (and, at a hospital, with `--isolation process`
next to `fl_node.flower.hospital`, so only the installed ClientApp runs; see that module);
the ledger reads these keys from it:

| key        | meaning                                                              |
|------------|----------------------------------------------------------------------|
| `sov-home` | the owner's data directory (keystore, deployment manifests)         |
| `rpc-url`  | the chain's JSON-RPC endpoint this node trusts                       |
| `account`  | the keystore alias of the dataset owner (signs the attestations)     |
| `partition`| the node's partition file (`.npz`); its CID is the on-chain dataset id|

A password-protected keystore account is unlocked with `SOV_KEY_PASSWORD` in the
SuperNode's environment. The account is loaded for the chain id the node reads from
`rpc-url`: a `devN` alias (a public key) is refused on any chain but the devnet.

The dataset id is computed from the file the node holds, never taken from the
coordinator: a node speaks only for the data it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerClient
from ledger.keys import DevAccountOffDevnetError, Keystore
from ledger.settings import Settings
from ledger.store import cid_of, content_root

from ..data import Partition, read_partition
from ..errors import FLError

Scalar = bool | bytes | float | int | str

NODE_CONFIG_KEYS = ("sov-home", "rpc-url", "account", "partition")
_EXAMPLE = " ".join(f'{key}="..."' for key in NODE_CONFIG_KEYS)


class NodeConfigError(FLError, ValueError):
    """A SuperNode's `--node-config` lacks a ledger key or names something that does not exist."""


def _text(node_config: Mapping[str, Scalar], key: str) -> str:
    value = node_config.get(key)
    if not isinstance(value, str) or not value:
        raise NodeConfigError(
            f"SuperNode node config needs {key!r} (a string); it has {sorted(node_config)}. "
            f"Start it with --node-config '{_EXAMPLE}'"
        )
    return value


@dataclass(frozen=True)
class NodeSite:
    """Where one data owner's node keeps its state; the heavy parts load on first use."""

    settings: Settings
    account_alias: str
    partition_path: Path

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Scalar]) -> NodeSite:
        """Reads the ledger keys of a SuperNode's node config."""
        partition = Path(_text(node_config, "partition"))
        if not partition.is_file():
            raise NodeConfigError(f"partition file {partition} (node config 'partition') does not exist")
        settings = Settings(home=Path(_text(node_config, "sov-home")), rpc_url=_text(node_config, "rpc-url"))
        return cls(settings=settings, account_alias=_text(node_config, "account"), partition_path=partition)

    @cached_property
    def partition_bytes(self) -> bytes:
        """The partition file's bytes (read once)."""
        return self.partition_path.read_bytes()

    @cached_property
    def dataset_id(self) -> int:
        """`uint256(contentRoot)` of the partition file's CIDv1: the id it was registered under."""
        return int.from_bytes(content_root(cid_of(self.partition_bytes)), "big")

    @cached_property
    def partition(self) -> Partition:
        """The node's examples."""
        return read_partition(self.partition_bytes)

    @cached_property
    def client(self) -> LedgerClient:
        """This node's own chain connection (its deployment manifest under `sov-home`), signing
        as the dataset owner.

        Raises `NodeConfigError` when `account` names a devnet key and the chain is not a devnet.
        """
        reader = LedgerClient.connect(self.settings)
        try:
            account = Keystore(self.settings).account(self.account_alias, chain_id=reader.chain_id)
        except DevAccountOffDevnetError as error:
            raise NodeConfigError(f"node config 'account' = {self.account_alias!r}: {error}") from error
        return reader.with_account(account)

    @property
    def account(self) -> LocalAccount:
        """The dataset owner's signing account (loaded with the chain connection)."""
        account = self.client.account
        assert account is not None  # `client` always attaches one
        return account
