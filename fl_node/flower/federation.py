"""A Flower deployment on one machine: a SuperLink and SuperNodes on 127.0.0.1.

For tests, demos and trying the Flower engine without a cluster. Every process gets its
own process group and log file under the work directory; `stop()` ends them by group
(a ClientApp child survives a plain kill of its SuperNode), including the SuperExec the
SuperLink starts in a session of its own.

The SuperLink always runs with `--disable-runtime-dependency-installation`: without it,
it would `uv sync` the app's dependencies at run time, which here means downloading a
CUDA build of torch.

Each SuperNode runs as a hospital's must (`fl_node.flower.hospital`): with `--isolation
process`, next to a `python -P -m fl_node.flower.hospital serve` process that executes its
tasks with the installed ClientApp and refuses FABs that name or ship another. `stock`
nodes run the FAB's ClientApp as stock Flower does; they exist to show what that allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import FLError
from .hospital import MODULE as HOSPITAL_MODULE

ConfigValue = bool | float | int | str

PROJECT_DIR = Path(__file__).resolve().parent / "project"
"""The Flower App (pyproject.toml) of the ledger's ServerApp and ClientApp."""

_STOP_GRACE_S = 8.0


class FederationError(FLError, RuntimeError):
    """A SuperLink, SuperNode or `flwr run` did not start or did not finish; the message says which."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS reports free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def toml_value(value: ConfigValue) -> str:
    """A TOML literal for a run/node config value (JSON string escapes are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def node_config_arg(config: Mapping[str, ConfigValue]) -> str:
    """The `--node-config` argument of a SuperNode: space-separated `key=<TOML value>` pairs."""
    return " ".join(f"{key}={toml_value(value)}" for key, value in config.items())


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc), to find processes a daemon detached."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name in field 2 may contain spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_groups(groups: Sequence[tuple[int, subprocess.Popen[bytes] | None]]) -> None:
    """SIGTERM every group at once, wait for all, then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, 2.0)):
        for pgid, _ in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for _, process in groups:
                if process is not None:
                    process.poll()  # reap the leader: a zombie still counts as a group member
            if not any(_group_alive(pgid) for pgid, _ in groups):
                return
            time.sleep(0.1)


@dataclass
class FederationRun:
    """A finished `flwr run --stream`: its exit code and everything it printed."""

    returncode: int
    output: str
    seconds: float


@dataclass
class LocalFederation:
    """A SuperLink plus one SuperNode per node config, all on 127.0.0.1."""

    work_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    superlink_port: int = 0
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        # The SuperLink launches `flower-superexec` by name: it must be on PATH.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["FLWR_HOME"] = str(self.work_dir / "flwr-home")
        env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
        return env

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                list(argv),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.work_dir,
                start_new_session=True,
            )
        self.processes.append((name, process))
        return process

    def log(self, name: str) -> str:
        """The log of process `name` (`superlink`, `supernode-0`, `hospital-0` (its task executor), ...)."""
        path = self.work_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(
        self,
        node_configs: Sequence[Mapping[str, ConfigValue]],
        *,
        timeout: float = 60.0,
        stock: Collection[int] = (),
        supernode_args: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        """Starts the SuperLink, waits until it listens, then starts one SuperNode per config.

        SuperNode `i` runs only the installed ClientApp (`fl_node.flower.hospital`) unless `i`
        is in `stock`; `supernode_args[i]` are extra `flower-supernode` arguments (e.g.
        `--trusted-entities FILE`).
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        self.superlink_port = self.superlink_port or free_port()
        superlink = self._spawn(
            "superlink",
            [
                str(bin_dir / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.superlink_port),
                "--disable-runtime-dependency-installation",
                "--database",
                str(self.work_dir / "superlink.db"),
            ],
        )
        deadline = time.monotonic() + timeout
        while not _answers(self.superlink_port):
            if superlink.poll() is not None or time.monotonic() > deadline:
                tail = self.log("superlink")[-2000:]
                raise FederationError(f"SuperLink did not listen on 127.0.0.1:{self.superlink_port}: {tail}")
            time.sleep(0.2)
        self._write_flower_config()
        for index, node_config in enumerate(node_configs):
            runtime_port = free_port()
            argv = [
                str(bin_dir / "flower-supernode"),
                "--insecure",
                "--superlink",
                f"127.0.0.1:{self.superlink_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(runtime_port),
                "--node-config",
                node_config_arg(node_config),
                *(supernode_args or {}).get(index, ()),
            ]
            if index in stock:
                self._spawn(f"supernode-{index}", argv)
                continue
            # Flower starts no task process in this mode: the hospital's executor runs them, and
            # only it holds the secret that takes tasks from the SuperNode.
            secret = self.work_dir / f"hospital-{index}.secret"
            with os.fdopen(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(secrets.token_bytes(32))
            auth = ["--superexec-auth-secret-file", str(secret)]
            self._spawn(f"supernode-{index}", [*argv, "--isolation", "process", *auth])
            self._spawn(
                f"hospital-{index}",
                [
                    sys.executable,
                    "-P",
                    "-m",
                    HOSPITAL_MODULE,
                    "serve",
                    "--runtime-api-address",
                    f"127.0.0.1:{runtime_port}",
                    *auth,
                ],
            )

    def _write_flower_config(self) -> None:
        home = self.work_dir / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "local-federation"\n\n'
            "[superlink.local-federation]\n"
            f'address = "127.0.0.1:{self.superlink_port}"\n'
            "insecure = true\n"
        )

    def run(
        self,
        run_config: Mapping[str, ConfigValue],
        *,
        app_dir: Path = PROJECT_DIR,
        timeout: float = 600.0,
    ) -> FederationRun:
        """`flwr run --stream` of the app with `run_config`; returns when the run ends."""
        config_path = self.work_dir / "run-config.toml"
        config_path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in run_config.items()))
        bin_dir = Path(sys.executable).parent
        started = time.monotonic()
        with (self.work_dir / "flwr-run.log").open("wb") as log_file:
            process = subprocess.Popen(
                [
                    str(bin_dir / "flwr"),
                    "run",
                    str(app_dir),
                    "local-federation",
                    "--stream",
                    "--run-config",
                    str(config_path),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.work_dir,
                start_new_session=True,
            )
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_groups([(process.pid, process)])
                raise FederationError(
                    f"flwr run did not finish within {timeout:.0f} s: {self.log('flwr-run')[-3000:]}"
                ) from None
        return FederationRun(returncode, self.log("flwr-run"), time.monotonic() - started)

    def stop(self) -> None:
        """Stops every process this federation started, by process group, all at once."""
        detached: list[int] = []
        for name, process in self.processes:
            if name == "superlink":
                # SuperExec runs in a session of its own; stop it with its parent.
                detached.extend(_children(process.pid))
        groups: list[tuple[int, subprocess.Popen[bytes] | None]] = [(p.pid, p) for _, p in self.processes]
        for pid in detached:
            with contextlib.suppress(ProcessLookupError):
                groups.append((os.getpgid(pid), None))
        _stop_groups(groups)
        self.processes.clear()

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
