"""Deploy the three contracts and keep a manifest of where they are, per chain id.

The manifest `$SOV_HOME/deployments/<chain_id>.json` records the addresses, the block the
deployment started in (where an event index starts) and the keccak256 of each contract's
runtime code. A manifest is refused when the node's chain id differs or the code at an
address is not what was deployed (a restarted devnet without its state, another network).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from ledger.chain.abi import ARTIFACTS_DIR, CONTRACT_NAMES, ContractABI, load_artifact
from ledger.chain.revert import RevertDecoder
from ledger.chain.sender import TransactionSender
from ledger.chain.transport import Transport
from ledger.errors import ConfigurationError, DeploymentMismatchError, DeploymentNotFoundError, RPCError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient

log = logging.getLogger(__name__)

# Constructor parameter name (as in the Solidity sources) -> the contract it refers to.
_CONSTRUCTOR_REFS = {"registry_": "DatasetRegistry", "grants_": "UsageGrants"}

# The views that wire the contracts together: contract -> {view: the contract it returns}.
_WIRING = {
    "UsageGrants": {"registry": "DatasetRegistry"},
    "TrainingLedger": {"registry": "DatasetRegistry", "grants": "UsageGrants"},
}


class DeploymentExistsError(ConfigurationError, FileExistsError):
    """This home already has a live deployment manifest for the chain; replacing it needs `force`."""


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    addresses: dict[str, str]
    deployed_block: int
    code_hashes: dict[str, str] = field(default_factory=dict)

    def address(self, contract: str) -> str:
        """The address of `contract` (`DatasetRegistry`, `UsageGrants` or `TrainingLedger`)."""
        try:
            return self.addresses[contract]
        except KeyError:
            raise ConfigurationError(
                f"deployment on chain {self.chain_id} has no {contract}; it has {', '.join(self.addresses)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the manifest file's content)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Deployment:
        """Parse a manifest; raises ConfigurationError when fields are missing."""
        try:
            return cls(
                chain_id=int(raw["chain_id"]),
                addresses={k: to_checksum_address(v) for k, v in dict(raw["addresses"]).items()},
                deployed_block=int(raw["deployed_block"]),
                code_hashes={k: str(v) for k, v in dict(raw.get("code_hashes", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigurationError(f"deployment manifest is malformed ({error!r})") from None


def manifest_path(settings: Settings, chain_id: int) -> Path:
    """`$SOV_HOME/deployments/<chain_id>.json`."""
    return settings.deployments_dir / f"{chain_id}.json"


def save_deployment(settings: Settings, deployment: Deployment) -> Path:
    """Write the manifest atomically; returns its path."""
    path = manifest_path(settings, deployment.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(deployment.to_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path


def as_transport(chain: LedgerClient | Web3 | Transport) -> Transport:
    """A `Transport` for a client, a `Web3` or a transport."""
    if isinstance(chain, Transport):
        return chain
    if isinstance(chain, Web3):
        provider = chain.provider
        url = str(getattr(provider, "endpoint_uri", None) or getattr(provider, "ipc_path", "") or provider)
        return Transport(provider, url)
    return chain.transport


def code_hash(transport: Transport, address: str) -> str:
    """keccak256 of the runtime code at `address` (0x-hex); the hash of empty code if none."""
    code = str(transport.request("eth_getCode", [address, "latest"]))
    return "0x" + keccak(bytes.fromhex(code[2:])).hex()


def load_deployment(
    settings: Settings, chain: LedgerClient | Web3 | Transport, chain_id: int | None = None
) -> Deployment:
    """The manifest for the node's chain, verified against the node (chain id and code hashes)."""
    transport = as_transport(chain)
    if chain_id is None:
        chain_id = int(transport.request("eth_chainId", []), 16)
    path = manifest_path(settings, chain_id)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeploymentNotFoundError(
            f"no deployment manifest for chain {chain_id} at {path}; "
            f"run `sov deploy` against {transport.rpc_url}"
        ) from None
    except ValueError as error:
        raise ConfigurationError(f"deployment manifest {path} is not valid JSON: {error}") from None
    deployment = Deployment.from_dict(raw)
    verify_deployment(transport, deployment, chain_id, path)
    return deployment


def verify_deployment(
    transport: Transport, deployment: Deployment, chain_id: int, source: Path | str = ""
) -> None:
    """Raise `DeploymentMismatchError` unless the node has this deployment's chain id and code."""
    where = f" ({source})" if source else ""
    if deployment.chain_id != chain_id:
        raise DeploymentMismatchError(
            f"deployment manifest{where} is for chain {deployment.chain_id}, "
            f"but {transport.rpc_url} is chain "
            f"{chain_id}; deploy to this chain with `sov deploy`"
        )
    for name in CONTRACT_NAMES:
        address = deployment.address(name)
        actual = code_hash(transport, address)
        expected = deployment.code_hashes.get(name)
        empty = "0x" + keccak(b"").hex()
        if actual == empty:
            raise DeploymentMismatchError(
                f"deployment manifest{where} says {name} is at {address} on chain {chain_id}, "
                f"but there is no code there at {transport.rpc_url} "
                "(a devnet restarted without its state?); run `sov deploy` again"
            )
        if expected is not None and expected != actual:
            raise DeploymentMismatchError(
                f"the code at {address} on chain {chain_id} is not the {name} "
                f"of the deployment manifest{where} "
                f"(code hash {actual}, manifest {expected}); run `sov deploy` again"
            )


def _view_address(transport: Transport, address: str, view: str) -> str:
    """The address an argument-less view (`registry()`) returns."""
    data = "0x" + keccak(text=f"{view}()")[:4].hex()
    try:
        raw = str(transport.request("eth_call", [{"to": address, "data": data}, "latest"]))
        word = bytes.fromhex(raw[2:])
    except (RPCError, ValueError):
        word = b""
    if len(word) != 32 or any(word[:12]):
        raise DeploymentMismatchError(
            f"the contract at {address} does not answer {view}() with an address; "
            "it is not a sovereign-ledger contract"
        )
    return to_checksum_address(word[12:])


def verify_build(transport: Transport, deployment: Deployment, artifacts_dir: Path = ARTIFACTS_DIR) -> None:
    """Raise `DeploymentMismatchError` unless each contract runs this build's code, wired together.

    The runtime code at each address must be the artifact's deployed bytecode once its
    immutables (the addresses of the other two contracts) are blanked: the contracts this
    build would deploy, pointing at each other and at nothing else.
    """
    chain_id = deployment.chain_id
    for name, views in _WIRING.items():
        for view, target in views.items():
            actual = _view_address(transport, deployment.address(name), view)
            if actual != deployment.address(target):
                raise DeploymentMismatchError(
                    f"{name} at {deployment.address(name)} on chain {chain_id} uses {target} {actual}, "
                    f"not the deployment's {target} {deployment.address(target)}"
                )
    for name in CONTRACT_NAMES:
        address = deployment.address(name)
        code = bytes.fromhex(str(transport.request("eth_getCode", [address, "latest"]))[2:])
        expected = bytes.fromhex(load_artifact(name, artifacts_dir).deployed_bytecode.removeprefix("0x"))
        if not code:
            raise DeploymentMismatchError(
                f"there is no contract at {address} on chain {chain_id} (the deployment's {name})"
            )
        if len(code) != len(expected) or _blank_immutables(code, expected) != expected:
            raise DeploymentMismatchError(
                f"the code at {address} on chain {chain_id} is not the {name} of this build "
                f"(artifacts in {artifacts_dir}); another version of sovereign-ledger, or another "
                "contract, was deployed there"
            )


# solc leaves each immutable as `PUSH32 0` in the artifact's runtime code and fills the 32
# bytes at deployment; optimised code never pushes a zero that way otherwise.
_IMMUTABLE_PLACEHOLDER = b"\x7f" + bytes(32)


def _blank_immutables(code: bytes, expected: bytes) -> bytes:
    """`code` with the 32 bytes of each immutable slot of `expected` zeroed (same length)."""
    blanked = bytearray(code)
    start = expected.find(_IMMUTABLE_PLACEHOLDER)
    while start != -1:
        blanked[start + 1 : start + 33] = bytes(32)
        start = expected.find(_IMMUTABLE_PLACEHOLDER, start + 1)
    return bytes(blanked)


def first_code_block(transport: Transport, address: str) -> int:
    """The first block at which `address` has code (binary search over historical state)."""
    latest = int(transport.request("eth_blockNumber", []), 16)

    def has_code(block: int) -> bool:
        return str(transport.request("eth_getCode", [address, hex(block)])) not in ("0x", "0x0", "")

    if not has_code(latest):
        raise DeploymentMismatchError(f"there is no contract at {address} at {transport.rpc_url}")
    low, high = 0, latest
    while low < high:
        middle = (low + high) // 2
        if has_code(middle):
            high = middle
        else:
            low = middle + 1
    return low


def deployment_at(transport: Transport, training_ledger: str, chain_id: int | None = None) -> Deployment:
    """The deployment a TrainingLedger address belongs to: its registry and grants, read from it.

    The deployed block is where the DatasetRegistry's code first appears (where an event
    index starts); the code hashes are those on the node (check them with `verify_build`).
    """
    address = to_checksum_address(training_ledger)
    if chain_id is None:
        chain_id = int(transport.request("eth_chainId", []), 16)
    if code_hash(transport, address) == "0x" + keccak(b"").hex():
        raise DeploymentMismatchError(
            f"there is no contract at {address} on chain {chain_id}; give the address of the "
            "deployment's TrainingLedger"
        )
    addresses = {
        "DatasetRegistry": _view_address(transport, address, "registry"),
        "UsageGrants": _view_address(transport, address, "grants"),
        "TrainingLedger": address,
    }
    return Deployment(
        chain_id=chain_id,
        addresses=addresses,
        deployed_block=first_code_block(transport, addresses["DatasetRegistry"]),
        code_hashes={name: code_hash(transport, a) for name, a in addresses.items()},
    )


def refuse_to_replace(settings: Settings, transport: Transport, chain_id: int) -> None:
    """Raise `DeploymentExistsError` when this home's manifest for the chain points at live contracts.

    A manifest whose contracts are gone (a devnet restarted without its state) may be replaced.
    """
    try:
        existing = load_deployment(settings, transport, chain_id)
    except ConfigurationError:
        return
    raise DeploymentExistsError(
        f"chain {chain_id} already has a deployment in {manifest_path(settings, chain_id)} "
        f"(TrainingLedger {existing.address('TrainingLedger')}, "
        f"deployed at block {existing.deployed_block}); "
        "deploying again creates new contracts that the other parties on this chain will not see "
        "(they keep using the existing ones). Use `sov network join` to use the existing deployment, "
        "or pass --force to deploy anyway and replace the manifest"
    )


def deploy_contracts(
    chain: LedgerClient | Web3 | Transport,
    account: LocalAccount,
    *,
    settings: Settings | None = None,
    artifacts_dir: Path = ARTIFACTS_DIR,
) -> Deployment:
    """Deploy DatasetRegistry, UsageGrants(registry) and TrainingLedger(registry, grants).

    Saves the manifest under `settings.deployments_dir` when `settings` is given.
    """
    transport = as_transport(chain)
    chain_id = int(transport.request("eth_chainId", []), 16)
    artifacts = {name: load_artifact(name, artifacts_dir) for name in CONTRACT_NAMES}
    abis = {name: ContractABI(name, art.abi) for name, art in artifacts.items()}
    sender = TransactionSender(transport, chain_id, account, RevertDecoder(abis.values()))
    addresses: dict[str, str] = {}
    first_block: int | None = None
    for name in CONTRACT_NAMES:
        abi = abis[name]
        ctor_names = [
            str(p.get("name", ""))
            for item in artifacts[name].abi
            if item.get("type") == "constructor"
            for p in item.get("inputs", [])
        ]
        try:
            ctor_args = [addresses[_CONSTRUCTOR_REFS[arg]] for arg in ctor_names]
        except KeyError as error:
            raise ConfigurationError(f"{name}'s constructor takes an unexpected argument {error}") from None
        data = artifacts[name].bytecode + encode(list(abi.constructor_types), ctor_args).hex()
        receipt = sender.transact(None, data, action=f"deploy {name}")
        addresses[name] = to_checksum_address(receipt["contractAddress"])
        if first_block is None:
            first_block = int(receipt["blockNumber"], 16)
        log.info("deployed %s at %s", name, addresses[name])
    assert first_block is not None
    deployment = Deployment(
        chain_id=chain_id,
        addresses=addresses,
        deployed_block=first_block,
        code_hashes={name: code_hash(transport, address) for name, address in addresses.items()},
    )
    if settings is not None:
        save_deployment(settings, deployment)
    return deployment
