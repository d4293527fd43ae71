"""A data owner's node in its own process: the coordinator reaches it over a pipe.

The child process opens its own chain connection and content store, holds the owner's
key and data, and answers round requests until its pipe closes. If it dies (killed,
crashed, out of memory), `handle` raises `NodeUnavailableError` and the coordinator
counts a missing reply; the round goes on when quorum holds.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .errors import NodeUnavailableError
from .messages import NodeReply, RoundRequest


@dataclass(frozen=True)
class NodeProcessConfig:
    """What a node process needs to start: all plain data, so it crosses the process boundary."""

    dataset_id: int
    partition_file: Path
    private_key: bytes
    rpc_url: str
    deployment: dict[str, Any]
    blockstore_dir: Path
    owner_wallet: str | None = None


def _serve(conn: Connection, config: NodeProcessConfig) -> None:
    # Imports happen in the child: it loads torch and opens its own connections.
    from eth_account import Account

    from ledger.chain.client import LedgerClient
    from ledger.deploy import Deployment
    from ledger.store.local import LocalBlockstore

    from .data import read_partition
    from .node import DataOwnerNode
    from .train import configure_worker

    configure_worker()
    account = Account.from_key(config.private_key)
    partition = read_partition(config.partition_file)
    node = DataOwnerNode(
        dataset_id=config.dataset_id,
        features=partition.x,
        labels=partition.y,
        account=account,
        client=LedgerClient.from_url(config.rpc_url, Deployment.from_dict(config.deployment), account),
        store=LocalBlockstore(config.blockstore_dir),
        owner_wallet=config.owner_wallet,
    )
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        conn.send(node.handle(request))


class ProcessNode:
    """Coordinator-side handle of a node running in a child process."""

    def __init__(self, config: NodeProcessConfig, start_timeout_s: float = 120.0) -> None:
        self.dataset_id = config.dataset_id
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_conn, config), daemon=True)
        self.process.start()
        child_conn.close()
        if not self._conn.poll(start_timeout_s) or self._recv() != "ready":
            self.stop()
            raise NodeUnavailableError(f"node of dataset {self.dataset_id:#x} did not start")

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.process.pid is not None
        return self.process.pid

    def _recv(self) -> Any:
        try:
            return self._conn.recv()
        except (EOFError, OSError) as error:
            code = self.process.exitcode
            raise NodeUnavailableError(
                f"node process {self.process.pid} of dataset {self.dataset_id:#x} is gone (exit code {code})"
            ) from error

    def handle(self, request: RoundRequest) -> NodeReply:
        """Sends the request and waits for the reply; raises if the process dies meanwhile."""
        try:
            self._conn.send(request)
        except (BrokenPipeError, OSError) as error:
            raise NodeUnavailableError(
                f"node process {self.process.pid} of dataset {self.dataset_id:#x} is gone"
            ) from error
        reply: NodeReply = self._recv()
        return reply

    def kill(self) -> None:
        """SIGKILL the node (fault injection)."""
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(timeout=10)

    def stop(self) -> None:
        """Close the pipe and end the process."""
        self._conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.kill()
