"""Contract ABIs: the compiled artifacts, and calldata/return/event/error coding over eth-abi.

The facade encodes calls itself (selector + `eth_abi.encode`) instead of going through
web3's contract objects: those re-validate and re-resolve the ABI on every call, which
costs more than the RPC round trip on a local node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
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


@lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    """`to_checksum_address`, remembered: two keccak256 per address dominated decoding a batch."""
    return str(to_checksum_address(address))


def _normalise(abi_kind: str, value: Any) -> Any:
    """Decoded values in the form people use: checksummed addresses, tuples as lists."""
    if abi_kind == "address":
        return _checksummed(value)
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
        """Calldata as a 0x-hex string.

        Calls with scalar arguments are remembered (a node sends the same reads every
        round); the key holds each argument's type, so `True` and `1` stay apart and a
        value eth-abi refuses is refused every time.
        """
        try:
            key = tuple((type(arg), arg) for arg in args)
            return _encode_cached(self.selector, self.input_types, key)
        except TypeError:  # an unhashable argument (a list): encode it afresh
            return _encode(self.selector, self.input_types, args)

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        """The decoded return values (addresses checksummed)."""
        plan = _static_plan(self.output_types)
        values = None if plan is None else _decode_static(plan, data)
        if values is None:  # dynamic types, or data eth-abi refuses: let it decode (or raise)
            values = decode(list(self.output_types), data)
        return tuple(_normalise(t, v) for t, v in zip(self.output_types, values, strict=True))


def _encode(selector: bytes, input_types: tuple[str, ...], args: Sequence[Any]) -> str:
    return "0x" + (selector + encode(list(input_types), list(args))).hex()


@lru_cache(maxsize=4096)
def _encode_cached(selector: bytes, input_types: tuple[str, ...], key: tuple[tuple[type, Any], ...]) -> str:
    return _encode(selector, input_types, [arg for _, arg in key])


# A decoding plan for ABI types made only of static words (uintN, bool, address, bytesN and
# tuples of them), which is what the ledger's views return: one 32-byte word per value, read
# here with eth-abi's strict checks (zero padding, bool 0 or 1). Anything else, or a word
# failing a check, goes to eth-abi, which decodes it or raises its own error.
_Plan = tuple[tuple[str, int, "_Plan"], ...]


def _split_top_level(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:index])
            start = index + 1
    parts.append(inner[start:])
    return parts


@cache
def _static_plan(types: tuple[str, ...]) -> _Plan | None:
    plan = []
    for kind in types:
        if kind.startswith("(") and kind.endswith(")"):
            inner = _static_plan(tuple(_split_top_level(kind[1:-1])))
            if inner is None:
                return None
            plan.append(("tuple", 0, inner))
        elif kind == "bool" or kind == "address":
            plan.append((kind, 0, ()))
        elif kind.startswith("uint") and kind[4:].isdigit() and int(kind[4:]) in _UINT_BITS:
            plan.append(("uint", 32 - int(kind[4:]) // 8, ()))
        elif kind.startswith("bytes") and kind[5:].isdigit() and 1 <= int(kind[5:]) <= 32:
            plan.append(("bytes", int(kind[5:]), ()))
        else:
            return None
    return tuple(plan)


_ZERO_WORD = bytes(32)
_UINT_BITS = frozenset(range(8, 257, 8))


def _decode_static(plan: _Plan, data: bytes, offset: int = 0) -> tuple[Any, ...] | None:
    values: list[Any] = []
    for kind, size, inner in plan:
        if kind == "tuple":
            decoded = _decode_static(inner, data, offset)
            if decoded is None:
                return None
            values.append(decoded)
            offset += 32 * _words(inner)
            continue
        word = data[offset : offset + 32]
        if len(word) != 32:
            return None
        offset += 32
        if kind == "uint":
            if word[:size] != _ZERO_WORD[:size]:
                return None
            values.append(int.from_bytes(word, "big"))
        elif kind == "bool":
            if word[:31] != _ZERO_WORD[:31] or word[31] > 1:
                return None
            values.append(word[31] == 1)
        elif kind == "address":
            if word[:12] != _ZERO_WORD[:12]:
                return None
            values.append("0x" + word[12:].hex())
        else:  # bytesN: left-aligned, zero padding on the right
            if word[size:] != _ZERO_WORD[size:]:
                return None
            values.append(word[:size])
    return tuple(values)


@cache
def _words(plan: _Plan) -> int:
    return sum(_words(inner) if kind == "tuple" else 1 for kind, _, inner in plan)


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
