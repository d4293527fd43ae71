"""The Kubo RPC backend against a real IPFS node (offline js-ipfs, Kubo-compatible API)."""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ledger.store import (
    CHUNK_SIZE,
    CID,
    MAX_LINKS,
    CIDMismatchError,
    ContentIntegrityError,
    ContentNotFoundError,
    KuboStore,
    LocalBlockstore,
    UnreachableError,
    cid_of,
    put_path,
)
from ledger.store.errors import IpfsNodeError


@pytest.fixture()
def kubo(ipfs_api_url: str) -> Iterator[KuboStore]:
    """A client of the session's IPFS node (`has` waits 1 s for absent blocks)."""
    with KuboStore(ipfs_api_url, timeout=120.0, has_timeout=1.0) as store:
        yield store


def _base58btc(binary: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    value = int.from_bytes(binary, "big")
    text = ""
    while value:
        value, digit = divmod(value, 58)
        text = alphabet[digit] + text
    return "z" + "1" * (len(binary) - len(binary.lstrip(b"\0"))) + text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_node_cids_equal_local_cids_across_sizes(kubo: KuboStore) -> None:
    for size in (0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 7, MAX_LINKS * CHUNK_SIZE + 1):
        data = os.urandom(size)
        # put() raises CIDMismatchError if the node's CID differs from ours
        cid = kubo.put(data)
        assert cid == cid_of(data), size
        assert kubo.has(cid)
        assert kubo.get(cid) == data


def test_put_file_streams_to_the_node(kubo: KuboStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    cid = put_path(kubo, path)
    assert cid == cid_of(data)
    assert kubo.get(cid) == data


def test_has_pin_and_absent_content(kubo: KuboStore) -> None:
    data = os.urandom(1000)
    cid = kubo.put(data)
    kubo.pin(cid)
    pins = httpx.post(f"{kubo.api_url}/api/v0/pin/ls", params={"arg": cid, "cid-base": "base32"}).json()
    assert cid in json.dumps(pins)
    absent = cid_of(os.urandom(64))
    assert not kubo.has(absent)
    # An offline node looks for an absent block until the request's timeout: keep it short.
    with KuboStore(kubo.api_url, timeout=3.0) as impatient:
        with pytest.raises(ContentNotFoundError, match=f"has no content for {absent}"):
            impatient.get(absent)
        with pytest.raises(ContentNotFoundError, match=f"has no content for {absent}"):
            impatient.pin(absent)
    assert not kubo.has(absent)


def test_node_car_export_imports_into_a_fresh_local_store(kubo: KuboStore, tmp_path: Path) -> None:
    model = os.urandom(3 * CHUNK_SIZE + 1)
    manifest = b'{"round": 2, "participants": [1, 2]}'
    roots = [kubo.put(model), kubo.put(manifest)]
    car = io.BytesIO()
    kubo.export_car(roots, car)
    local = LocalBlockstore(tmp_path / "local")
    assert local.import_car(io.BytesIO(car.getvalue())) == roots
    assert local.get(roots[0]) == model
    assert local.get(roots[1]) == manifest


def test_local_car_imports_into_the_node(kubo: KuboStore, tmp_path: Path) -> None:
    local = LocalBlockstore(tmp_path / "local")
    data = os.urandom(2 * CHUNK_SIZE + 3)
    cid = local.put(data)
    assert not kubo.has(cid)
    car = io.BytesIO()
    local.export_car([cid], car)
    assert kubo.import_car(io.BytesIO(car.getvalue())) == [cid]
    assert kubo.has(cid)
    assert kubo.get(cid) == data
    pins = httpx.post(f"{kubo.api_url}/api/v0/pin/ls", params={"arg": cid, "cid-base": "base32"}).json()
    assert cid in json.dumps(pins)


def test_tampered_car_is_refused_before_upload(kubo: KuboStore, tmp_path: Path) -> None:
    local = LocalBlockstore(tmp_path / "local")
    data = os.urandom(CHUNK_SIZE + 10)
    cid = local.put(data)
    car = io.BytesIO()
    local.export_car([cid], car)
    damaged = bytearray(car.getvalue())
    damaged[-3] ^= 0x55
    with pytest.raises(ContentIntegrityError, match="does not hash to its CID"):
        kubo.import_car(io.BytesIO(bytes(damaged)))
    assert not kubo.has(cid)


def test_damaged_block_in_the_node_is_never_returned(kubo: KuboStore, ipfs_repo: Path) -> None:
    data = os.urandom(CHUNK_SIZE + 100)
    cid = kubo.put(data)
    first_leaf = data[:CHUNK_SIZE]
    # The node keeps blocks as files; damage the first leaf's file in place.
    damaged_files = 0
    for path in (ipfs_repo / "blocks").rglob("*.data"):
        if path.stat().st_size == CHUNK_SIZE and path.read_bytes() == first_leaf:
            flipped = bytearray(first_leaf)
            flipped[123] ^= 0x01
            path.write_bytes(bytes(flipped))
            damaged_files += 1
    assert damaged_files == 1
    result: bytes | None = None
    with pytest.raises(ContentIntegrityError) as caught:
        result = kubo.get(cid)
    assert result is None
    assert f"returned damaged data for {cid}" in str(caught.value)
    with pytest.raises(ContentIntegrityError, match="does not hash to its CID"):
        kubo.export_car([cid], io.BytesIO())


def test_daemon_down_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    store = KuboStore(url, timeout=2.0)
    for call in (
        lambda: store.put(b"x"),
        lambda: store.get(cid_of(b"x")),
        lambda: store.has(cid_of(b"x")),
        lambda: store.pin(cid_of(b"x")),
        lambda: store.export_car([cid_of(b"x")], io.BytesIO()),
    ):
        with pytest.raises(UnreachableError, match=f"IPFS node at {url} is unreachable"):
            call()
    # ConnectionError is the builtin callers may catch
    with pytest.raises(ConnectionError):
        store.version()


def test_a_node_reporting_another_cid_is_not_trusted() -> None:
    # The true boundary (the node's HTTP answer) is faked: a node configured with other
    # import settings (here: a CIDv0-style root) answers add with a different CID.
    wrong = cid_of(b"something else")

    def node(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v0/add"
        assert request.url.params["raw-leaves"] == "true"
        assert request.url.params["cid-version"] == "1"
        return httpx.Response(200, json={"Name": "blob", "Hash": wrong, "Size": "3"})

    store = KuboStore("http://ipfs.test", transport=httpx.MockTransport(node))
    with pytest.raises(CIDMismatchError) as caught:
        store.put(b"abc")
    message = str(caught.value)
    assert wrong in message and cid_of(b"abc") in message and "Import settings" in message


def test_a_node_answering_with_base58_is_normalised() -> None:
    data = b"abc"
    # the same CID in base58btc, as js-ipfs prints it without cid-base=base32
    base58 = _base58btc(CID.parse(cid_of(data)).binary)

    def node(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Name": "blob", "Hash": base58, "Size": "3"})

    store = KuboStore("http://ipfs.test", transport=httpx.MockTransport(node))
    assert store.put(data) == cid_of(data)


def test_node_errors_carry_the_node_message() -> None:
    def node(request: httpx.Request) -> httpx.Response:
        # Kubo's error body for a refused call
        return httpx.Response(500, json={"Message": "pinning is disabled", "Code": 0, "Type": "error"})

    store = KuboStore("http://ipfs.test", transport=httpx.MockTransport(node))
    cid = cid_of(b"abc")
    with pytest.raises(
        IpfsNodeError, match=rf"refused /api/v0/pin/add for {cid} \(HTTP 500\): pinning is disabled"
    ):
        store.pin(cid)


def test_a_url_that_is_not_an_ipfs_api() -> None:
    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="404 page not found")

    store = KuboStore("http://web.test", transport=httpx.MockTransport(server))
    with pytest.raises(IpfsNodeError, match=r"http://web.test has no /api/v0/version .*RPC API address"):
        store.version()


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is `directory` (js-ipfs renames its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cwd").resolve() == directory.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_stopped_daemon_is_unreachable_and_leaves_no_process(
    tmp_path: Path, start_ipfs_daemon: Callable[[Path], tuple[str, Callable[[], None]]]
) -> None:
    # The reliability suite's situation: a node that was up and went away.
    api_url, stop = start_ipfs_daemon(tmp_path)
    assert _processes_in(tmp_path)  # the daemon runs with tmp_path as its working directory
    store = KuboStore(api_url, timeout=5.0)
    cid = store.put(b"anchored before the outage")
    stop()
    stop()  # idempotent
    assert _processes_in(tmp_path) == []
    with pytest.raises(UnreachableError, match=f"IPFS node at {api_url} is unreachable"):
        store.get(cid)
