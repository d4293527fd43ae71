"""Contract ABIs: the compiled artifacts, and calldata/return/event/error coding over eth-abi.

The facade encodes calls itself (selector + `eth_abi.encode`) instead of going through
web3's contract objects: those re-validate and re-resolve the ABI on every call, which
costs more than the RPC round trip on a local node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.errors import ConfigurationError

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"
CONTRACT_NAMES: tuple[str, ...] = ("DatasetRegistry", "UsageGrants", "TrainingLedger")


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation bytecode and deployed (runtime) bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> Artifact:
    """Load `<directory>/<name>.json` as written by the contracts build (`contracts/export-artifacts.mjs`)."""
    path = directory / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"contract artifact {path} is missing; build the contracts (`npx hardhat build` and "
            "`node contracts/export-artifacts.mjs`)"
        ) from None
    except ValueError as error:
        raise ConfigurationError(f"contract artifact {path} is not valid JSON: {error}") from None
    return Artifact(
        name=name,
        abi=list(raw["abi"]),
        bytecode=str(raw["bytecode"]),
        deployed_bytecode=str(raw.get("deployedBytecode", "")),
    )


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter (tuples spelled out as `(t1,t2)`)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _normalise(abi_kind: str, value: Any) -> Any:
    """Decoded values in the form people use: checksummed addresses, tuples as lists."""
    if abi_kind == "address":
        return to_checksum_address(value)
    if abi_kind.endswith("]") and isinstance(value, tuple | list):
        inner = abi_kind[: abi_kind.rindex("[")]
        return [_normalise(inner, v) for v in value]
    return value


@dataclass(frozen=True)
class FunctionABI:
    """One contract function: its selector and argument/return types."""

    name: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    input_names: tuple[str, ...]

    def encode_call(self, args: Sequence[Any]) -> str:
        """Calldata as a 0x-hex string."""
        return "0x" + (self.selector + encode(list(self.input_types), list(args))).hex()

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        """The decoded return values (addresses checksummed)."""
        values = decode(list(self.output_types), data)
        return tuple(_normalise(t, v) for t, v in zip(self.output_types, values, strict=True))


@dataclass(frozen=True)
class ErrorABI:
    """One custom error: name, argument names and types."""

    name: str
    selector: bytes
    input_types: tuple[str, ...]
    input_names: tuple[str, ...]
    contract: str

    def decode_args(self, data: bytes) -> dict[str, Any]:
        """Arguments by name from the ABI-encoded part after the selector."""
        values = decode(list(self.input_types), data)
        names = [n or f"arg{i}" for i, n in enumerate(self.input_names)]
        return {n: _normalise(t, v) for n, t, v in zip(names, self.input_types, values, strict=True)}


@dataclass(frozen=True)
class EventABI:
    """One event: topic0 and the split into indexed (topics) and data fields."""

    name: str
    topic0: bytes
    fields: tuple[tuple[str, str, bool], ...]  # (name, type, indexed)
    contract: str

    def decode_log(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Arguments by name of a log whose topic0 is this event's."""
        indexed = [(n, t) for n, t, i in self.fields if i]
        plain = [(n, t) for n, t, i in self.fields if not i]
        args: dict[str, Any] = {}
        for (name, kind), topic in zip(indexed, topics[1:], strict=True):
            # Dynamic indexed values are stored as their hash: keep the hash.
            if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                args[name] = bytes(topic)
            else:
                args[name] = _normalise(kind, decode([kind], topic)[0])
        values = decode([t for _, t in plain], data)
        for (name, kind), value in zip(plain, values, strict=True):
            args[name] = _normalise(kind, value)
        return args


class ContractABI:
    """Functions (by name and arity), errors (by selector) and events (by topic0) of one contract."""

    def __init__(self, name: str, abi: Sequence[Mapping[str, Any]]) -> None:
        self.name = name
        self.functions: dict[tuple[str, int], FunctionABI] = {}
        self.errors: dict[bytes, ErrorABI] = {}
        self.events: dict[bytes, EventABI] = {}
        self.constructor_types: tuple[str, ...] = ()
        for item in abi:
            kind = item.get("type")
            inputs = list(item.get("inputs", []))
            types = tuple(abi_type(p) for p in inputs)
            names = tuple(str(p.get("name", "")) for p in inputs)
            if kind == "constructor":
                self.constructor_types = types
            elif kind == "function":
                signature = f"{item['name']}({','.join(types)})"
                fn = FunctionABI(
                    name=str(item["name"]),
                    selector=keccak(text=signature)[:4],
                    input_types=types,
                    output_types=tuple(abi_type(p) for p in item.get("outputs", [])),
                    input_names=names,
                )
                self.functions[(fn.name, len(types))] = fn
            elif kind == "error":
                signature = f"{item['name']}({','.join(types)})"
                error = ErrorABI(str(item["name"]), keccak(text=signature)[:4], types, names, name)
                self.errors[error.selector] = error
            elif kind == "event" and not item.get("anonymous"):
                signature = f"{item['name']}({','.join(types)})"
                fields = tuple((str(p.get("name", "")), abi_type(p), bool(p.get("indexed"))) for p in inputs)
                event = EventABI(str(item["name"]), keccak(text=signature), fields, name)
                self.events[event.topic0] = event

    def function(self, name: str, arity: int) -> FunctionABI:
        """The function `name` taking `arity` arguments."""
        try:
            return self.functions[(name, arity)]
        except KeyError:
            raise ConfigurationError(
                f"{self.name} has no function {name} with {arity} arguments; are the artifacts current?"
            ) from None


def standard_errors() -> dict[bytes, ErrorABI]:
    """Solidity's built-in `Error(string)` and `Panic(uint256)`."""
    out: dict[bytes, ErrorABI] = {}
    for name, kind, arg in (("Error", "string", "reason"), ("Panic", "uint256", "code")):
        selector = keccak(text=f"{name}({kind})")[:4]
        out[selector] = ErrorABI(name, selector, (kind,), (arg,), "")
    return out
