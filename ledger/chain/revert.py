"""Turn revert data into the specific `ContractRevertError` subclass it stands for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi.exceptions import DecodingError

from ledger.chain.abi import ContractABI, ErrorABI, standard_errors
from ledger.errors import REVERT_ERRORS, ContractRevertError

PANIC_REASONS: dict[int, str] = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


class RevertDecoder:
    """Knows every custom error of the given contracts by selector."""

    def __init__(self, contracts: Iterable[ContractABI]) -> None:
        self.errors: dict[bytes, ErrorABI] = standard_errors()
        for contract in contracts:
            # Shared OpenZeppelin errors appear in several ABIs with the same selector.
            for selector, error in contract.errors.items():
                self.errors.setdefault(selector, error)

    def decode(self, data: bytes, action: str = "") -> ContractRevertError:
        """The exception for revert `data` (selector + ABI-encoded arguments)."""
        if len(data) < 4:
            return ContractRevertError("revert", {"data": data} if data else {}, action=action)
        error = self.errors.get(data[:4])
        if error is None:
            return ContractRevertError(f"unknown error 0x{data[:4].hex()}", {"data": data}, action=action)
        try:
            args: dict[str, Any] = error.decode_args(data[4:])
        except DecodingError:
            return ContractRevertError(error.name, {"data": data}, action=action)
        types = dict(
            zip([n or f"arg{i}" for i, n in enumerate(error.input_names)], error.input_types, strict=True)
        )
        if error.name == "Error":
            return ContractRevertError("Error", args, arg_types=types, action=action)
        if error.name == "Panic":
            code = int(args["code"])
            args = {"code": f"0x{code:02x} ({PANIC_REASONS.get(code, 'unknown panic')})"}
        cls = REVERT_ERRORS.get(error.name, ContractRevertError)
        return cls(error.name, args, arg_types=types, action=action)


def revert_data_of(error: Mapping[str, Any]) -> bytes | None:
    """The revert data in a JSON-RPC error object, or None when the error is not a revert.

    anvil and hardhat put it in `error.data` as a hex string; some nodes nest it as
    `error.data.data`, geth also uses code 3 with `data`.
    """
    data = error.get("data")
    if isinstance(data, Mapping):
        data = data.get("data")
    message = str(error.get("message", "")).lower()
    is_revert = error.get("code") == 3 or "revert" in message
    if isinstance(data, str) and data.startswith("0x"):
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            return b"" if is_revert else None
        return raw if (is_revert or raw) else None
    return b"" if is_revert else None
