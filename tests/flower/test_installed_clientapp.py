"""The gate is the hospital's code: a lab's FAB cannot replace or leave out the ClientApp.

Real processes: one SuperLink and three SuperNodes on 127.0.0.1, reused for three runs.

- SuperNode 0 is a hospital's: `--isolation process` with `fl_node.flower.hospital` executing
  its tasks (what `LocalFederation` starts by default).
- SuperNode 1 is stock Flower (the FAB's ClientApp runs): the control that shows each
  dishonest FAB really does what it claims on a node without the guarantee.
- SuperNode 2 is stock Flower with `--trusted-entities` (a key that signed nothing): what
  flwr 1.42 itself enforces for a FAB sent with `flwr run <dir>`.

The lab's ServerApp (shipped in each FAB) sends one `train` message to every node and
writes what came back. The dishonest ClientApps read the node's partition file and return
its size: data leaving the hospital without the gate ever running.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fl_node.data import partition_bytes
from fl_node.flower import wire
from fl_node.flower.federation import LocalFederation
from fl_node.flower.hospital import INSTALLED_CLIENTAPP, ForeignClientAppError, check_fab

REPO = Path(__file__).resolve().parents[2]
HOSPITAL, STOCK, SIGNED_ONLY = 0, 1, 2

LAB_SERVER = """
import json, time
from pathlib import Path

from flwr.app import Context, Message
from flwr.common import FitIns, MessageType, ndarrays_to_parameters
from flwr.compat.common.recorddict_compat import fitins_to_recorddict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    deadline = time.time() + 60
    nodes = list(grid.get_node_ids())
    while len(nodes) < int(context.run_config["nodes"]) and time.time() < deadline:
        time.sleep(0.5)
        nodes = list(grid.get_node_ids())
    content = fitins_to_recorddict(FitIns(ndarrays_to_parameters([]), {}), keep_input=False)
    messages = [Message(content, dst_node_id=n, message_type=MessageType.TRAIN) for n in nodes]
    replies = {}
    for reply in grid.send_and_receive(messages, timeout=120):
        node = str(reply.metadata.src_node_id)
        if reply.has_error():
            replies[node] = {"error": reply.error.reason}
        else:
            replies[node] = {
                "configs": {k: dict(v) for k, v in reply.content.config_records.items()},
                "arrays": sorted(reply.content.array_records),
            }
    Path(str(context.run_config["report"])).write_text(json.dumps(replies, default=str))
"""

THIEF = """
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

client_app = ClientApp()


@client_app.train()
def train(message: Message, context: Context) -> Message:
    # No gate: read the hospital's data and ship it (its size stands in for the bytes).
    data = Path(str(context.node_config["partition"])).read_bytes()
    stolen = ConfigRecord({"bytes": len(data), "by": "LABEL"})
    return Message(RecordDict({"stolen": stolen}), reply_to=message)
"""


def _write_fab(root: Path, name: str, clientapp: str, files: dict[str, str]) -> Path:
    app = root / name
    app.mkdir(parents=True)
    (app / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"
            dependencies = ["flwr==1.42.*"]

            [tool.flwr.app]
            publisher = "dishonest-lab"

            [tool.flwr.app.components]
            serverapp = "lab_server:app"
            clientapp = "{clientapp}"

            [tool.flwr.app.config]
            nodes = 3
            report = ""
            """
        )
    )
    for relative, text in {"lab_server.py": LAB_SERVER, **files}.items():
        path = app / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return app


@dataclass
class Deployment:
    federation: LocalFederation
    node_ids: dict[int, str]
    partition_size: int
    fabs: Path
    work: Path

    def run(self, app: Path) -> dict[str, Any]:
        report = app.parent / f"{app.name}-report.json"
        result = self.federation.run({"nodes": 3, "report": str(report)}, app_dir=app, timeout=240)
        assert result.returncode == 0, result.output[-3000:]
        replies: dict[str, Any] = json.loads(report.read_text())
        assert set(replies) == set(self.node_ids.values()), (replies, self.node_ids)
        return {index: replies[node] for index, node in self.node_ids.items()}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("installed-clientapp")
    partition = work / "partition.npz"
    partition.write_bytes(
        partition_bytes(np.zeros((3, 4), dtype=np.float32), np.array([0, 1, 0], dtype=np.int64))
    )
    node_config = {
        "sov-home": str(work / "hospital-home"),
        "rpc-url": "http://127.0.0.1:9",  # never reached: no round here is a ledger job's
        "account": "dev1",
        "partition": str(partition),
    }
    public_key = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    trusted = work / "trusted-entities.yaml"
    trusted.write_text(f"fpk_hospital_reviewer: '{public_key}'\n")
    federation = LocalFederation(work / "flower", env={"PYTHONPATH": str(REPO)})
    with federation:
        federation.start(
            [node_config] * 3,
            stock={STOCK, SIGNED_ONLY},
            supernode_args={SIGNED_ONLY: ["--trusted-entities", str(trusted)]},
        )
        node_ids: dict[int, str] = {}
        for index in (HOSPITAL, STOCK, SIGNED_ONLY):
            node_ids[index] = _node_id(federation, index)
        yield Deployment(federation, node_ids, partition.stat().st_size, work / "fabs", work)


def _node_id(federation: LocalFederation, index: int, timeout: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"SuperNode ID: (\d+)", federation.log(f"supernode-{index}"))
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(
        f"SuperNode {index} did not register: {federation.log(f'supernode-{index}')[-2000:]}"
    )


def _assert_flwr_refused_unsigned(reply: dict[str, Any]) -> None:
    # flwr's own check: with trusted entities, a FAB without a platform signature is refused.
    assert reply == {"error": "The FAB could not be verified."}


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_fab_that_omits_the_gate_is_refused(deployment: Deployment) -> None:
    app = _write_fab(
        deployment.fabs, "omits-gate", "thief:client_app", {"thief.py": THIEF.replace("LABEL", "thief")}
    )
    replies = deployment.run(app)
    # On stock Flower the lab's ClientApp runs and the data's size comes back: the attack is real.
    assert replies[STOCK]["configs"]["stolen"] == {"bytes": deployment.partition_size, "by": "thief"}
    # The hospital's node refuses, naming both references, and returns nothing else.
    assert replies[HOSPITAL] == {
        "error": f"this node runs only its installed ClientApp {INSTALLED_CLIENTAPP!r} (which holds the "
        "ledger gate); the FAB names 'thief:client_app'"
    }
    assert "refused" in deployment.federation.log(f"hospital-{HOSPITAL}")
    _assert_flwr_refused_unsigned(replies[SIGNED_ONLY])


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_fab_that_replaces_the_installed_gate_is_refused(deployment: Deployment) -> None:
    # The FAB names the installed reference but ships its own `fl_node.flower.app`.
    shadow = {
        "fl_node/__init__.py": "",
        "fl_node/flower/__init__.py": "",
        "fl_node/flower/app.py": THIEF.replace("LABEL", "shadow"),
    }
    app = _write_fab(deployment.fabs, "replaces-gate", INSTALLED_CLIENTAPP, shadow)
    replies = deployment.run(app)
    # Stock Flower puts the FAB first on sys.path: its fl_node shadows the installed package.
    assert replies[STOCK]["configs"]["stolen"] == {"bytes": deployment.partition_size, "by": "shadow"}
    assert replies[HOSPITAL] == {
        "error": "the FAB ships fl_node/__init__.py, fl_node/flower/__init__.py, fl_node/flower/app.py, "
        "which would replace the installed fl_node/ledger code; this node runs only its installed ClientApp"
    }
    _assert_flwr_refused_unsigned(replies[SIGNED_ONLY])


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_fab_naming_the_installed_clientapp_runs_the_hospitals_gate(deployment: Deployment) -> None:
    # The lab may ship its own ServerApp; the hospital runs its installed ClientApp, whose gate
    # refuses a round that is no ledger job's (the probe server sends no job id).
    app = _write_fab(deployment.fabs, "honest-reference", INSTALLED_CLIENTAPP, {})
    replies = deployment.run(app)
    for index in (HOSPITAL, STOCK):
        metrics = replies[index]["configs"]["fitres.metrics"]
        assert metrics[wire.REFUSED] == "no_job", replies[index]
        assert "stolen" not in replies[index]["configs"]
    _assert_flwr_refused_unsigned(replies[SIGNED_ONLY])


@pytest.mark.slow
def test_only_the_hospitals_executor_takes_its_tasks(deployment: Deployment) -> None:
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.runtime import RuntimeHttpClient

    port = re.search(r"--runtime-api-address 127\.0\.0\.1:(\d+)", _argv(deployment, f"hospital-{HOSPITAL}"))
    assert port is not None
    stranger = RuntimeHttpClient.from_server_address(
        server_address=f"127.0.0.1:{port.group(1)}",
        insecure=True,
        root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
    )
    try:
        # Without the SuperNode's secret no other process on the machine can take its tasks.
        with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
            stranger.AcquireTask(AcquireTaskRequest(supported_task_types=["flwr-clientapp"]))
    finally:
        stranger.close()


def _argv(deployment: Deployment, name: str) -> str:
    for process_name, process in deployment.federation.processes:
        if process_name == name:
            return " ".join(str(arg) for arg in process.args)
    raise AssertionError(f"no process {name}")


def test_check_fab_without_processes(tmp_path: Path) -> None:
    import io
    import zipfile

    def fab(clientapp: str, extra: tuple[str, ...] = ()) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(
                "pyproject.toml",
                f'[tool.flwr.app.components]\nclientapp = "{clientapp}"\nserverapp = "x:y"\n',
            )
            for name in extra:
                archive.writestr(name, "")
        return buffer.getvalue()

    check_fab(fab(INSTALLED_CLIENTAPP, ("lab_server.py", ".info/CONTENT", "README.md")))
    with pytest.raises(ForeignClientAppError, match=r"the FAB names 'fl_node\.flower\.app:client_app_v2'"):
        check_fab(fab("fl_node.flower.app:client_app_v2"))
    with pytest.raises(ForeignClientAppError, match=r"the FAB ships ledger\.py, which would replace"):
        check_fab(fab(INSTALLED_CLIENTAPP, ("ledger.py",)))
    with pytest.raises(ForeignClientAppError, match=r"the FAB ships fl_node/gate\.py, which would replace"):
        check_fab(fab(INSTALLED_CLIENTAPP, ("fl_node/gate.py",)))
    with pytest.raises(ForeignClientAppError, match="not a readable Flower App Bundle"):
        check_fab(b"not a zip")
