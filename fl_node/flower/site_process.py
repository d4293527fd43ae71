"""Long-running Flower processes of one party: a hospital's SuperNode with its executor, a lab's SuperLink.

`LocalFederation` starts a whole federation on one machine for tests; these start one
party's share of it, as `sov node run` and `sov job superlink` do on the party's own
machine. Every child runs in a process group of its own and is told to die with its parent
(Linux `PR_SET_PDEATHSIG`), so a SIGKILL of the `sov` process leaves nothing behind; a
normal stop ends them by process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .federation import FederationError, _children, _stop_groups, free_port, node_config_arg
from .hospital import MODULE as HOSPITAL_MODULE

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: a new process group, and SIGKILL when the parent dies."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def parse_address(text: str, what: str) -> tuple[str, int]:
    """`HOST:PORT` as a pair; raises ValueError naming `what` and the expected form."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT (for example 127.0.0.1:9092), got {text!r}")
    return host, int(port)


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections at host:port."""
    with socket.socket() as probe:
        probe.settimeout(timeout)
        try:
            return probe.connect_ex((host, port)) == 0
        except OSError:
            return False


def flower_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Flower child: this interpreter's bin first on PATH, no update check."""
    env = dict(os.environ)
    env.update(extra or {})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    return env


@dataclass
class PartyProcesses:
    """The children of one `sov` command, each logging to a file under `log_dir`."""

    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Starts `argv` in a new process group that dies with this process; output to `<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log_file:
            process = subprocess.Popen(
                list(argv),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=flower_environment(self.env),
                preexec_fn=_die_with_parent,
            )
        self.processes.append((name, process))
        return process

    def log(self, name: str, tail: int = 2000) -> str:
        """The last `tail` characters of `<name>.log`."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def exited(self) -> tuple[str, int] | None:
        """The first child that has exited, with its status, or None while all run."""
        for name, process in self.processes:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        """Stops every child by process group (SIGTERM, then SIGKILL), all at once.

        A SuperLink's SuperExec runs in a session of its own; it is stopped with its parent.
        """
        groups: list[tuple[int, subprocess.Popen[bytes] | None]] = [(p.pid, p) for _, p in self.processes]
        for name, process in self.processes:
            if name == "superlink":
                for pid in _children(process.pid):
                    with contextlib.suppress(ProcessLookupError):
                        groups.append((os.getpgid(pid), None))
        _stop_groups(groups)
        self.processes.clear()


def start_hospital_node(
    processes: PartyProcesses, *, superlink: str, node_config: Mapping[str, str | int | float | bool]
) -> int:
    """Starts a SuperNode in hospital mode and the executor that runs only the installed ClientApp.

    Returns the SuperNode's runtime API port (on 127.0.0.1). Only the executor holds the
    SuperExec secret (a fresh one per start, mode 0600), so no other process on the machine
    can take the node's tasks.
    """
    bin_dir = Path(sys.executable).parent
    runtime_port = free_port()
    secret = processes.log_dir / "superexec.secret"
    processes.log_dir.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(secrets.token_bytes(32))
    auth = ["--superexec-auth-secret-file", str(secret)]
    processes.spawn(
        "supernode",
        [
            str(bin_dir / "flower-supernode"),
            "--insecure",
            "--superlink",
            superlink,
            "--host",
            "127.0.0.1",
            "--port",
            str(runtime_port),
            "--node-config",
            node_config_arg(node_config),
            "--isolation",
            "process",
            *auth,
        ],
    )
    processes.spawn(
        "executor",
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
    return runtime_port


def start_superlink(processes: PartyProcesses, *, host: str, port: int, timeout: float = 60.0) -> None:
    """Starts a SuperLink listening on host:port (never installing dependencies at run time)."""
    bin_dir = Path(sys.executable).parent
    process = processes.spawn(
        "superlink",
        [
            str(bin_dir / "flower-superlink"),
            "--insecure",
            "--host",
            host,
            "--port",
            str(port),
            "--disable-runtime-dependency-installation",
            "--database",
            str(processes.log_dir / "superlink.db"),
        ],
    )
    deadline = time.monotonic() + timeout
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while not answers(probe_host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise FederationError(
                f"the SuperLink did not listen on {host}:{port}: {processes.log('superlink')}"
            )
        time.sleep(0.2)
