"""CIDv1 parsing and encoding, varints and the dag-pb encoding of the importer."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import ContentStoreError, LedgerError
from ledger.store import CID, InvalidCIDError, cid_of, content_root
from ledger.store.cid import DAG_PB, RAW, decode_varint, encode_varint
from ledger.store.unixfs import CHUNK_SIZE, decode_file_node, import_bytes

EMPTY_RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_known_cid_of_empty_and_small_content() -> None:
    # The empty file is one empty raw block (what Kubo's add --cid-version=1 prints).
    assert cid_of(b"") == EMPTY_RAW_CID
    digest = hashlib.sha256(b"hello").digest()
    expected = "b" + base64.b32encode(bytes([1, RAW, 0x12, 32]) + digest).decode().lower().rstrip("=")
    assert cid_of(b"hello") == expected
    assert content_root(cid_of(b"hello")) == digest


@given(st.binary(min_size=32, max_size=32), st.sampled_from([RAW, DAG_PB]))
def test_text_and_binary_forms_round_trip(digest: bytes, codec: int) -> None:
    cid = CID(codec, digest)
    text = str(cid)
    assert text.startswith("bafk" if codec == RAW else "bafy")
    assert CID.parse(text) == cid
    assert CID.from_binary(cid.binary) == cid
    assert content_root(text) == digest


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty CID"),
        ("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "is a CIDv0"),
        ("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW", "is base58btc"),
        (EMPTY_RAW_CID.upper(), "upper-case base32"),
        ("bafkrei!!", "not a CIDv1 in base32"),
        ("hello world", "not a CIDv1 in base32"),
        ("b" + "a" * 10, "has CID version 0"),
        (EMPTY_RAW_CID[:-2], "has 35 bytes; a sha2-256 CIDv1 has 36"),
        (EMPTY_RAW_CID[:-4], "is not valid base32"),
        (EMPTY_RAW_CID + "aa", "has 37 bytes"),
        # CIDv1 dag-cbor (0x71) of the empty digest: a valid CID, but not a codec we store
        ("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "has codec 0x71"),
        # identity multihash instead of sha2-256
        ("bafkqaaa", "only sha2-256"),
    ],
)
def test_malformed_cid_strings_are_rejected_with_the_value(value: str, fragment: str) -> None:
    with pytest.raises(InvalidCIDError) as caught:
        CID.parse(value)
    message = str(caught.value)
    assert fragment in message
    if value:
        assert value[:20] in message or value[:20].lower() in message
    # the error is catchable as the builtin it means and as the ledger's roots
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ContentStoreError)
    assert isinstance(caught.value, LedgerError)


def test_content_root_rejects_a_non_string() -> None:
    with pytest.raises(InvalidCIDError, match="must be a string, got int"):
        content_root(42)  # type: ignore[arg-type]


def test_noncanonical_trailing_bits_are_rejected() -> None:
    # Changing the last character to one that only differs in the unused pad bits would
    # give the same binary CID under a second spelling.
    canonical = EMPTY_RAW_CID
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet.index(canonical[-1])
    sibling = canonical[:-1] + alphabet[last | 1 if last % 2 == 0 else last & ~1]
    with pytest.raises(InvalidCIDError, match="canonical"):
        CID.parse(sibling)


def test_varint_errors() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_varint(b"\x80\x80")
    with pytest.raises(ValueError, match="longer than 9 bytes"):
        decode_varint(b"\xff" * 10)
    with pytest.raises(ValueError, match="non-negative"):
        encode_varint(-1)


def test_internal_node_matches_the_kubo_layout() -> None:
    blocks: dict[CID, bytes] = {}
    data = bytes(range(256)) * (CHUNK_SIZE // 256) + b"tail"
    root = import_bytes(data, lambda cid, view: blocks.__setitem__(cid, bytes(view)))
    assert root.codec == DAG_PB
    node_bytes = blocks[root]
    node = decode_file_node(node_bytes, root)
    assert node.file_size == len(data)
    assert node.blocksizes == (CHUNK_SIZE, 4)
    assert node.data == b""
    assert [blocks[link] for link in node.links] == [data[:CHUNK_SIZE], b"tail"]
    # Links first (field 2), each with Hash, an empty Name and Tsize; Data (field 1) last.
    first_link = b"\x0a\x24" + node.links[0].binary + b"\x12\x00\x18" + encode_varint(CHUNK_SIZE)
    assert node_bytes.startswith(b"\x12" + encode_varint(len(first_link)) + first_link)
    unixfs = b"\x08\x02\x18" + encode_varint(len(data)) + b"\x20" + encode_varint(CHUNK_SIZE) + b"\x20\x04"
    assert node_bytes.endswith(b"\x0a" + encode_varint(len(unixfs)) + unixfs)
    assert hashlib.sha256(node_bytes).digest() == root.digest
