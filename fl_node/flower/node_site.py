"""A SuperNode's ledger identity: its data, its owner's key and its own chain connection.

A SuperNode is started with `--node-config` (and, at a hospital, with `--isolation process`
next to `fl_node.flower.hospital`, so only the installed ClientApp runs; see that module);
the ledger reads these keys from it:

| key        | meaning                                                              |
|------------|----------------------------------------------------------------------|
| `sov-home` | the owner's data directory (keystore, deployment manifests)         |
| `rpc-url`  | the chain's JSON-RPC endpoint this node trusts                       |
| `account`  | the keystore alias of the dataset owner (signs the attestations)     |
| `data`     | the hospital's own file (`.csv`, `.parquet` or `.npz`); its CID is the on-chain dataset id |
| `label`    | the label column of a table (must be the job's preprocessing label)   |
| `partition`| (older form of `data`) a prepared `.npz` partition file              |
| `decisions`| the node's decision log (JSON lines; default `<sov-home>/node/decisions.jsonl`) |

A password-protected keystore account is unlocked with `SOV_KEY_PASSWORD` in the
SuperNode's environment. The account is loaded for the chain id the node reads from
`rpc-url`: a `devN` alias (a public key) is refused on any chain but the devnet.

The dataset id is computed from the file the node holds, never taken from the
coordinator: a node speaks only for the data it has. A table is prepared for each job by
the job's own preprocessing spec (`fl_node.data.load_examples`), which is part of the
spec digest the node checks on chain; the hospital registers and keeps the very file it
exports, no converted copy.
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

from ..data import Partition, load_examples
from ..errors import FLError
from ..spec import PreprocessingSpec

Scalar = bool | bytes | float | int | str

NODE_CONFIG_KEYS = ("sov-home", "rpc-url", "account", "data")
_EXAMPLE = " ".join(f'{key}="..."' for key in NODE_CONFIG_KEYS)
DECISIONS_FILE = Path("node") / "decisions.jsonl"

# Prepared examples per (file, preprocessing): the gate mod and the ClientApp of one task share them.
_examples: dict[tuple[Path, str, str | None], Partition] = {}


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
    label: str | None = None
    decisions_path: Path | None = None

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Scalar]) -> NodeSite:
        """Reads the ledger keys of a SuperNode's node config."""
        key = "data" if node_config.get("data") else "partition" if node_config.get("partition") else "data"
        partition = Path(_text(node_config, key))
        if not partition.is_file():
            raise NodeConfigError(f"data file {partition} (node config {key!r}) does not exist")
        settings = Settings(home=Path(_text(node_config, "sov-home")), rpc_url=_text(node_config, "rpc-url"))
        label = node_config.get("label")
        decisions = node_config.get("decisions")
        return cls(
            settings=settings,
            account_alias=_text(node_config, "account"),
            partition_path=partition,
            label=label if isinstance(label, str) and label else None,
            decisions_path=Path(decisions) if isinstance(decisions, str) and decisions else None,
        )

    @property
    def decisions_file(self) -> Path:
        """Where this node's per-round decisions are appended (`sov node status` reads them)."""
        return self.decisions_path or self.settings.home / DECISIONS_FILE

    @cached_property
    def partition_bytes(self) -> bytes:
        """The partition file's bytes (read once)."""
        return self.partition_path.read_bytes()

    @cached_property
    def dataset_id(self) -> int:
        """`uint256(contentRoot)` of the partition file's CIDv1: the id it was registered under."""
        return int.from_bytes(content_root(cid_of(self.partition_bytes)), "big")

    def examples(self, preprocessing: PreprocessingSpec | None) -> Partition:
        """The node's examples, prepared by the job's preprocessing (an `.npz` is used as it is).

        Raises `DatasetError` when the file does not fit the job (a missing column, an
        unknown label value, another label column than the node's).
        """
        key = (
            self.partition_path,
            "" if preprocessing is None else preprocessing.model_dump_json(),
            self.label,
        )
        found = _examples.get(key)
        if found is None:
            found = _examples[key] = load_examples(self.partition_path, preprocessing, label=self.label)
        return found

    @property
    def partition(self) -> Partition:
        """The examples of an `.npz` node file (no preprocessing)."""
        return self.examples(None)

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
