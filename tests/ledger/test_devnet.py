"""Local nodes: start/stop by process group, persistence across kill -9, the embedded devnet,
and errors that name the unreachable URL."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ledger.chain.client import LedgerClient
from ledger.chain.sender import WaitPolicy
from ledger.chain.transport import RetryPolicy, Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import Devnet, NodeProcess, free_port, port_in_use, rpc_chain_id, start_anvil
from ledger.errors import DevnetError, UnreachableError
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from ledger.settings import Settings
from tests.conftest import deploy_on

AI = PURPOSES["ai-training"]


def _kill_9_after_a_full_dump(state_path: Path, pid: int, height: int, timeout: float = 10.0) -> None:
    """SIGKILL anvil's process group once its state file holds block `height`, as a crash would.

    anvil rewrites the file every second (--state-interval 1). It is stopped (SIGSTOP) before the
    file is read, so the file read is the one the crash leaves; a stop that caught a write halfway
    lets it run on and tries again (a crash mid-write is `test_a_state_file_cut_short_...`).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        os.killpg(pid, signal.SIGSTOP)
        with contextlib.suppress(OSError, ValueError, KeyError):
            best = json.loads(state_path.read_bytes())["best_block_number"]
            if (int(best, 0) if isinstance(best, str) else int(best)) >= height:
                os.killpg(pid, signal.SIGKILL)
                return
        os.killpg(pid, signal.SIGCONT)
        time.sleep(0.1)
    raise AssertionError(f"anvil wrote no state with block {height} to {state_path} within {timeout} s")


def test_anvil_binds_localhost_and_stop_ends_its_group() -> None:
    node = start_anvil()
    try:
        assert node.rpc_url == f"http://127.0.0.1:{node.port}"
        assert rpc_chain_id(node.rpc_url) == 31337
        assert os.getpgid(node.pid) == node.pid  # its own process group
    finally:
        node.stop()
    assert not node.alive()
    assert not port_in_use(node.port)
    assert rpc_chain_id(node.rpc_url) is None


def test_busy_port_is_refused_with_a_clear_message(anvil: NodeProcess) -> None:
    with pytest.raises(DevnetError, match=f"port {anvil.port} on 127.0.0.1 is already in use"):
        start_anvil(port=anvil.port)
    assert rpc_chain_id(anvil.rpc_url) == 31337  # the running node is untouched


def test_kill_9_and_restart_keeps_datasets_and_grants(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    node = start_anvil(state_path=state)
    try:
        chain = deploy_on(node)
        deployment = chain.deployment
        owner, lab = chain[1], chain[2]
        dataset_id, _ = owner.register_dataset(hashlib.sha256(b"persist").digest(), uri="ipfs://p")
        now = owner.latest_block().timestamp
        owner.issue_grant(dataset_id, str(lab.address), AI, now, now + 86_400)
        height = owner.latest_block().number
        _kill_9_after_a_full_dump(state, node.pid, height)
    finally:
        node.kill()  # no dump on exit (and reaped)
    assert not node.alive()

    restarted = start_anvil(port=node.port, state_path=state)
    try:
        client = LedgerClient.from_url(restarted.rpc_url, deployment, dev_account(1), verify=True)
        assert client.latest_block().number >= height
        assert client.dataset_state(dataset_id).owner == dev_account(1).address
        assert client.is_authorized(dataset_id, dev_account(2).address, AI)
        # The chain goes on from there: the account's nonce continues.
        other, _ = client.register_dataset(hashlib.sha256(b"after restart").digest())
        assert client.dataset_state(other).registered
    finally:
        restarted.stop()


def test_embedded_devnet_up_is_idempotent_and_keeps_its_chain(sov_settings: Settings) -> None:
    devnet = Devnet(sov_settings)
    assert not devnet.status().running
    status = devnet.up()
    try:
        assert status.running and status.chain_id == 31337
        assert status.rpc_url is not None and status.pid is not None
        assert status.addresses is None
        assert devnet.up().pid == status.pid  # reused, not restarted
        record = json.loads((sov_settings.devnet_dir / "devnet.json").read_text())
        assert record["pid"] == status.pid and record["rpc_url"] == status.rpc_url

        client = LedgerClient.from_url(
            status.rpc_url,
            deploy_contracts(_transport(status.rpc_url), dev_account(0), settings=sov_settings),
            dev_account(1),
        )
        assert devnet.status().addresses == client.deployment.addresses
        dataset_id, _ = client.register_dataset(hashlib.sha256(b"devnet").digest())

        # A crash (kill -9) of the detached node: `up` starts it again from its state file.
        _kill_9_after_a_full_dump(devnet.state_path, status.pid, client.latest_block().number)
        _wait_gone(status.pid)
        assert not devnet.status().running
        again = devnet.up()
        assert again.running and again.pid != status.pid
        reconnected = LedgerClient.connect(sov_settings, dev_account(1))  # manifest verified against the node
        assert reconnected.rpc_url == again.rpc_url
        assert reconnected.dataset_state(dataset_id).owner == dev_account(1).address
    finally:
        assert devnet.down()
    assert not devnet.status().running
    assert not devnet.down()  # already down: nothing to do


def test_a_state_file_cut_short_by_a_crash_is_set_aside_and_the_last_start_restored(
    sov_settings: Settings,
) -> None:
    devnet = Devnet(sov_settings)
    status = devnet.up()
    try:
        assert status.rpc_url is not None and status.recovered is None
        client = LedgerClient.from_url(
            status.rpc_url,
            deploy_contracts(_transport(status.rpc_url), dev_account(0), settings=sov_settings),
            dev_account(1),
        )
        dataset_id, _ = client.register_dataset(hashlib.sha256(b"kept").digest())
    finally:
        assert devnet.down()  # SIGTERM: anvil dumps the whole state on the way out
    again = devnet.up()  # starts from that state and keeps a copy of it
    try:
        assert again.recovered is None and devnet.started_state_path.exists()
        after = LedgerClient.connect(sov_settings, dev_account(1))
        later, _ = after.register_dataset(hashlib.sha256(b"after the start").digest())
    finally:
        assert devnet.down()
    # A crash while anvil rewrote the file: it ends halfway, and anvil alone refuses to start.
    whole = devnet.state_path.read_bytes()
    devnet.state_path.write_bytes(whole[: len(whole) // 2])

    restored = devnet.up()
    try:
        assert restored.running and restored.recovered is not None
        assert "the devnet's state file was cut short" in restored.recovered
        assert "restored the chain as of the previous start (later blocks are lost)" in restored.recovered
        (damaged,) = devnet.directory.glob("state.damaged-*.json")
        assert damaged.read_bytes() == whole[: len(whole) // 2]  # kept for whoever wants to look
        reconnected = LedgerClient.connect(sov_settings, dev_account(1))
        assert reconnected.dataset_state(dataset_id).owner == dev_account(1).address
        assert not reconnected.dataset_state(later).registered  # registered after the last start
    finally:
        assert devnet.down()


def test_a_damaged_state_file_without_an_earlier_start_starts_a_new_chain_and_says_so(
    sov_settings: Settings,
) -> None:
    devnet = Devnet(sov_settings)
    devnet.directory.mkdir(parents=True)
    devnet.state_path.write_text('{"block": {"number": 7')
    status = devnet.up()
    try:
        assert status.running and status.block_number == 0
        assert status.recovered is not None
        assert status.recovered.endswith("no earlier state was kept, so a new chain starts")
        assert f"moved to {devnet.directory}/state.damaged-" in status.recovered
    finally:
        assert devnet.down()


def _transport(url: str) -> Transport:
    return Transport(make_provider(url), url)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if stat and stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return
        time.sleep(0.05)


def test_unreachable_rpc_names_the_url(sov_settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = sov_settings.model_copy(update={"rpc_url": url})
    started = time.monotonic()
    with pytest.raises(UnreachableError, match=f"chain node at {url} is unreachable") as caught:
        LedgerClient.connect(settings, dev_account(0), retry=RetryPolicy(attempts=2, backoff_s=0.01))
    assert isinstance(caught.value, ConnectionError)
    assert "eth_chainId failed after 2 attempt(s)" in str(caught.value)
    assert time.monotonic() - started < 5
    assert not settings.home.exists()  # nothing was written


def test_unreachable_ipc_path_names_the_path(tmp_path: Path, sov_settings: Settings) -> None:
    path = tmp_path / "missing.ipc"
    settings = sov_settings.model_copy(update={"rpc_url": str(path)})
    with pytest.raises(UnreachableError, match=f"chain node at {path} is unreachable"):
        LedgerClient.connect(settings, retry=RetryPolicy(attempts=1))


def test_ipc_transport_reads_and_writes(tmp_path: Path) -> None:
    ipc = tmp_path / "anvil.ipc"
    node = start_anvil(ipc_path=ipc)
    try:
        chain = deploy_on(node)
        client = LedgerClient.from_url(str(ipc), chain.deployment, dev_account(1), verify=True)
        dataset_id, receipt = client.register_dataset(hashlib.sha256(b"ipc").digest())
        assert client.dataset_state(dataset_id).owner == dev_account(1).address
        assert chain[0].latest_block().number == receipt.block_number
    finally:
        node.stop()


def test_retry_policy_rides_out_a_node_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    node = start_anvil(state_path=state)
    chain = deploy_on(node)
    node.stop()  # SIGTERM: anvil dumps its state
    restarted: list[NodeProcess] = []
    starter = threading.Timer(0.3, lambda: restarted.append(start_anvil(port=node.port, state_path=state)))
    starter.start()
    try:
        client = LedgerClient.from_url(
            node.rpc_url,
            chain.deployment,
            dev_account(1),
            retry=RetryPolicy(attempts=12, backoff_s=0.05, backoff_factor=1.5),
        )
        assert client.job_count() == 0
        assert client.chain_id == 31337
    finally:
        starter.join()
        for n in restarted:
            n.stop()


def test_client_survives_a_node_replaced_without_state() -> None:
    """A fresh chain on the same URL (devnet restarted without state): nonces restart at 0, no gap."""
    node = start_anvil()
    chain = deploy_on(node)
    owner = LedgerClient.from_url(
        node.rpc_url, chain.deployment, dev_account(1), wait=WaitPolicy(timeout_s=10)
    )
    for label in (b"a", b"b", b"c"):
        owner.register_dataset(hashlib.sha256(label).digest())
    node.stop()
    fresh = start_anvil(port=node.port)
    try:
        assert deploy_on(fresh).deployment.addresses == chain.deployment.addresses  # same deployer nonces
        dataset_id, receipt = owner.register_dataset(hashlib.sha256(b"a").digest())
        tx = owner.transport.request("eth_getTransactionByHash", [receipt.tx_hash])
        assert int(tx["nonce"], 16) == 0
        assert owner.dataset_state(dataset_id).owner == dev_account(1).address
    finally:
        fresh.stop()


def _listening_on(port: int) -> set[str]:
    """The IPv4 addresses something listens on at `port`, from /proc/net/tcp (state 0A = LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_devnet_shared_with_other_machines_and_a_block_time(sov_settings: Settings) -> None:
    devnet = Devnet(sov_settings)
    status = devnet.up(host="0.0.0.0", block_time=1)
    try:
        assert status.host == "0.0.0.0" and status.block_time == 1.0
        assert status.port is not None and _listening_on(status.port) == {"0.0.0.0"}
        assert status.rpc_url == f"http://127.0.0.1:{status.port}"  # this machine connects locally
        record = json.loads((sov_settings.devnet_dir / "devnet.json").read_text())
        assert record["host"] == "0.0.0.0" and record["block_time"] == 1
        # Blocks come with the clock, without any transaction.
        first = devnet.status().block_number
        assert first is not None
        time.sleep(2.5)
        later = devnet.status().block_number
        assert later is not None and later >= first + 2
        assert devnet.up().pid == status.pid  # no change asked: the running devnet is reused
        with pytest.raises(DevnetError, match=r"already runs bound to 0\.0\.0\.0 with a block every 1 s"):
            devnet.up(block_time=2)
        with pytest.raises(DevnetError, match=r"already runs bound to 0\.0\.0\.0"):
            devnet.up(host="127.0.0.1")
        assert devnet.status().pid == status.pid
    finally:
        assert devnet.down()
    default = devnet.up()
    try:
        assert default.host == "127.0.0.1" and default.block_time is None
        assert default.port is not None and _listening_on(default.port) == {"127.0.0.1"}
    finally:
        devnet.down()


@pytest.mark.parametrize(
    ("host", "block_time", "message"),
    [
        ("999.1.1.1", None, "is not an address of this machine"),
        ("no-such-host.invalid", None, "is not an address of this machine"),
        ("8.8.8.8", None, "is not an address of this machine"),
        (None, 0.0, r"block time 0\.0 s is out of range"),
        (None, -2.0, "out of range"),
        (None, 1e9, "out of range"),
    ],
)
def test_devnet_options_are_checked_before_starting(
    sov_settings: Settings, host: str | None, block_time: float | None, message: str
) -> None:
    with pytest.raises(DevnetError, match=message):
        Devnet(sov_settings).up(host=host, block_time=block_time)
    assert not Devnet(sov_settings).status().running
    assert not (sov_settings.devnet_dir / "devnet.json").exists()
