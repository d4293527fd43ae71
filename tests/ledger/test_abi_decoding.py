"""The ABI facade's own static-word decoder agrees with eth-abi, value for value and refusal for refusal."""

from __future__ import annotations

import random

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError, EncodingTypeError

from ledger.chain.abi import CONTRACT_NAMES, ContractABI, FunctionABI, load_artifact

# The views a round reads, plus shapes the ledger does not return today.
TYPES: list[tuple[str, ...]] = [
    ("address", "uint32", "bool"),
    ("uint8",),
    ("(uint64,uint64,uint32,bool,bool,uint32,uint16,uint8,uint8,uint16)",),
    ("(address,uint64,bytes32,bytes32,bytes32,bytes32)",),
    ("bytes1", "bytes4", "uint256", "(bool,(address,bytes32),uint128)"),
]


def _function(output_types: tuple[str, ...]) -> FunctionABI:
    return FunctionABI("f", b"\x00" * 4, (), output_types, ())


def _random_value(kind: str, rng: random.Random) -> object:
    if kind.startswith("("):
        return tuple(_random_value(k, rng) for k in _components(kind))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind.startswith("uint"):
        return rng.getrandbits(int(kind[4:]))
    return rng.randbytes(int(kind[5:]))


def _components(kind: str) -> list[str]:
    parts, depth, start, inner = [], 0, 0, kind[1:-1]
    for index, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:index])
            start = index + 1
    return [*parts, inner[start:]]


def _reference(fn: FunctionABI, data: bytes) -> tuple[object, ...]:
    """What decoding gave before the fast path: eth-abi, then the same normalisation."""
    from ledger.chain.abi import _normalise

    values = decode(list(fn.output_types), data)
    return tuple(_normalise(t, v) for t, v in zip(fn.output_types, values, strict=True))


@pytest.mark.parametrize("types", TYPES)
def test_static_decoding_matches_eth_abi(types: tuple[str, ...]) -> None:
    rng = random.Random(str(types))
    fn = _function(types)
    for _ in range(200):
        data = encode(list(types), [_random_value(k, rng) for k in types])
        assert fn.decode_output(data) == _reference(fn, data)


@pytest.mark.parametrize("types", TYPES)
def test_bad_words_are_refused_as_eth_abi_refuses_them(types: tuple[str, ...]) -> None:
    """Non-zero padding, a bool other than 0/1, short data: the same error eth-abi raises."""
    rng = random.Random("bad" + str(types))
    fn = _function(types)
    data = encode(list(types), [_random_value(k, rng) for k in types])
    tried = 0
    for position in range(len(data)):
        for byte in (0x01, 0xFF):
            mutated = data[:position] + bytes([byte ^ data[position]]) + data[position + 1 :]
            try:
                expected: object = _reference(fn, mutated)
            except DecodingError as error:
                with pytest.raises(type(error)):
                    fn.decode_output(mutated)
                tried += 1
            else:
                assert fn.decode_output(mutated) == expected
    assert tried > 0  # some mutation hit padding or a bool
    for cut in (0, 1, len(data) - 1):
        with pytest.raises(DecodingError):
            fn.decode_output(data[:cut])


def test_dynamic_outputs_still_decode() -> None:
    fn = _function(("string", "uint256[]", "bytes"))
    data = encode(["string", "uint256[]", "bytes"], ["hospital", [1, 2, 3], b"\x01\x02"])
    assert fn.decode_output(data) == ("hospital", [1, 2, 3], b"\x01\x02")


def test_remembered_calldata_keeps_types_apart() -> None:
    """`True` and `1` hash alike: a remembered encoding of one must not answer for the other."""
    abi = ContractABI("UsageGrants", load_artifact(CONTRACT_NAMES[1]).abi)
    fn = abi.function("nonces", 1)
    address = "0x" + "11" * 20
    assert fn.encode_call([address]) == fn.encode_call([address])
    flag = FunctionABI("g", b"\x12\x34\x56\x78", ("bool",), (), ("b",))
    assert flag.encode_call([True]) == "0x12345678" + "00" * 31 + "01"
    with pytest.raises(EncodingTypeError, match="BooleanEncoder"):
        flag.encode_call([1])
    # An unhashable argument (a list) is encoded afresh.
    many = FunctionABI("h", b"\x00" * 4, ("uint256[]",), (), ("xs",))
    assert many.encode_call([[1, 2]]) == "0x00000000" + encode(["uint256[]"], [[1, 2]]).hex()
