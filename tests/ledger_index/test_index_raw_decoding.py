"""The index reads logs and headers as raw JSON-RPC and decodes static words itself: the rows it
writes are the rows of the web3 + eth_abi path, and an unusual word is left to eth_abi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from index_world import Chain, build_world, dump

from ledger.chain.transport import make_provider, make_web3
from ledger.index import EventIndex, _EventSpec, _NoRawAnswer


class _Web3PathIndex(EventIndex):
    """The index as it read logs before: web3's get_logs and get_block, eth_abi for every field."""

    def _raw(self, method: str, params: list[Any], what: str) -> Any:
        raise _NoRawAnswer

    def _decode_fast(self, spec: _EventSpec, topics: list[bytes], data: bytes) -> dict[str, Any] | None:
        return None


def test_raw_and_batched_reads_write_the_rows_of_the_web3_path(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    slow = _Web3PathIndex(tmp_path / "web3.sqlite", w3=chain.w3, deployment=chain.deployment, chunk_size=5)
    raw = EventIndex(tmp_path / "raw.sqlite", w3=chain.w3, deployment=chain.deployment, chunk_size=5)
    # The keep-alive provider posts bodies: headers go in one batch per range.
    batched_w3 = make_web3(make_provider(chain.rpc_url))
    batched = EventIndex(
        tmp_path / "batched.sqlite", w3=batched_w3, deployment=chain.deployment, chunk_size=5
    )
    counts = {slow.sync(), raw.sync(), batched.sync()}
    assert len(counts) == 1 and counts.pop() >= 20
    for index in (slow, raw, batched):
        index.close()
    expected = dump(tmp_path / "web3.sqlite")
    assert dump(tmp_path / "raw.sqlite") == expected
    assert dump(tmp_path / "batched.sqlite") == expected


def test_a_word_eth_abi_refuses_is_left_to_eth_abi(chain: Chain, tmp_path: Path) -> None:
    index = EventIndex(tmp_path / "index.sqlite", w3=chain.w3, deployment=chain.deployment)
    spec = next(
        s for by_topic in index._specs.values() for s in by_topic.values() if s.name == "GrantRevoked"
    )
    dataset, purpose = (7).to_bytes(32, "big"), bytes(range(32))
    grantee = bytes(12) + bytes.fromhex("aa" * 20)
    assert index._decode_fast(spec, [dataset, grantee, purpose], b"") == {
        "datasetId": 7,
        "grantee": to_checksum_address("0x" + "aa" * 20),
        "purpose": purpose,
    }
    dirty = b"\x01" + grantee[1:]  # non-zero padding above the 20 address bytes
    assert index._decode_fast(spec, [dataset, dirty, purpose], b"") is None
    raw = {
        "topics": ["0x" + t.hex() for t in (b"\x00" * 32, dataset, dirty, purpose)],
        "data": "0x",
        "blockNumber": "0x1",
        "logIndex": "0x0",
        "transactionHash": "0x" + "11" * 32,
        "blockHash": "0x" + "22" * 32,
    }
    with pytest.raises(DecodingError):
        index._decode(spec, raw)
    index.close()
