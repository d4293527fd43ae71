"""Fixtures for the content-store tests: a real IPFS node and an independent CID oracle.

- `ipfs_api_url`: one offline js-ipfs daemon (Kubo-compatible RPC API) per session,
  its repository in a session temp dir, stopped by process group at the end.
- `ipfs_repo`: that daemon's repository folder (to damage a block on purpose).
- `start_ipfs_daemon(tmp_path) -> (api_url, stop)`: a private daemon, for outage tests.
- `cid_oracle(paths, chunk_size=None, max_links=None)`: the CIDs the npm
  `ipfs-unixfs-importer` computes for files (Node.js, shares no code with ours).
- `store_dir` / `local_store`: a fresh local blockstore; `snapshot(dir)`: its files and bytes.

Install the Node side once: `npm ci --prefix tests/ipfs_node --no-audit --no-fund`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ledger.store import LocalBlockstore

IPFS_NODE_DIR = Path(__file__).resolve().parents[1] / "ipfs_node"


def _load_daemon_module() -> ModuleType:
    # Loaded by path so the helper works however pytest was started (no package needed).
    spec = importlib.util.spec_from_file_location("ipfs_node_daemon", IPFS_NODE_DIR / "daemon.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


daemon = _load_daemon_module()

CidOracle = Callable[..., list[str]]


@pytest.fixture(scope="session")
def ipfs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(API URL, repository path) of a running offline js-ipfs daemon."""
    tmp = tmp_path_factory.mktemp("ipfs")
    api_url, stop = daemon.start_ipfs_daemon(tmp)
    try:
        yield api_url, tmp / "ipfs-repo"
    finally:
        stop()


@pytest.fixture(scope="session")
def start_ipfs_daemon() -> Callable[[Path], tuple[str, Callable[[], None]]]:
    """`start_ipfs_daemon(tmp_path) -> (api_url, stop)` for a test that needs its own node."""
    start: Callable[[Path], tuple[str, Callable[[], None]]] = daemon.start_ipfs_daemon
    return start


@pytest.fixture(scope="session")
def ipfs_api_url(ipfs_daemon: tuple[str, Path]) -> str:
    """RPC API base URL of the session's IPFS daemon."""
    return ipfs_daemon[0]


@pytest.fixture(scope="session")
def ipfs_repo(ipfs_daemon: tuple[str, Path]) -> Path:
    """Repository folder (IPFS_PATH) of the session's IPFS daemon."""
    return ipfs_daemon[1]


@pytest.fixture(scope="session")
def cid_oracle() -> CidOracle:
    """Compute CIDs with the npm UnixFS importer (one Node process per call)."""
    script = IPFS_NODE_DIR / "cid-oracle.mjs"
    if not (IPFS_NODE_DIR / "node_modules" / "ipfs-unixfs-importer").is_dir():
        raise RuntimeError(f"the CID oracle is not installed; run `{daemon.INSTALL_HINT}`")

    def run(paths: list[Path], chunk_size: int | None = None, max_links: int | None = None) -> list[str]:
        env = dict(os.environ)
        if chunk_size is not None:
            env["ORACLE_CHUNK_SIZE"] = str(chunk_size)
        if max_links is not None:
            env["ORACLE_MAX_LINKS"] = str(max_links)
        result = subprocess.run(
            [daemon.node_binary(), str(script), *map(str, paths)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"CID oracle failed ({result.returncode}): {result.stderr}")
        cids = result.stdout.split()
        assert len(cids) == len(paths), result.stdout
        return cids

    return run


@pytest.fixture()
def store_dir(tmp_path: Path) -> Path:
    """An empty directory for a local blockstore."""
    return tmp_path / "blocks"


@pytest.fixture()
def local_store(store_dir: Path) -> LocalBlockstore:
    """A fresh local blockstore."""
    return LocalBlockstore(store_dir)


def _snapshot(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture()
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    """`snapshot(dir)`: every file under `dir` with its bytes, to assert a failure changed nothing."""
    return _snapshot
