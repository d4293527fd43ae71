"""The hospital's side of a Flower deployment: its SuperNode runs only the installed ClientApp.

Stock Flower 1.42 runs, on every SuperNode, whatever ClientApp the lab's FAB names: its
`flwr-clientapp` process unpacks the FAB, puts the FAB's directory first on `sys.path` and
imports the FAB's `clientapp` reference. A lab could ship a ClientApp without the gate, or
a `fl_node/` folder that shadows the installed one, and that code would run with the
hospital's node config (its partition, its keystore) in the hospital's process.

So a SuperNode that serves ledger jobs is started with `--isolation process` (Flower then
starts no task process itself) and this module executes its tasks instead of Flower's
SuperExec and `flwr-clientapp`:

- `serve` polls the SuperNode's runtime API on 127.0.0.1 for ClientApp tasks (signing the
  request with the SuperNode's `--superexec-auth-secret-file`, so no other local process
  can take them) and runs each in a fresh `python -P -m fl_node.flower.hospital task`
  process (`-P`: not even the working directory is put before the installed packages).
- `run_task` pulls the message and the run's FAB, and checks the FAB (`check_fab`): its
  `clientapp` must be `fl_node.flower.app:client_app` and it must not carry a module that
  would stand in for the hospital's packages. A FAB that fails is answered with an error
  naming what was refused; no code runs and nothing is trained or signed.
- A FAB that passes is never installed or imported: the task runs
  `fl_node.flower.app:client_app` from the hospital's own installation, with the ledger
  gate as its mod. The FAB contributes configuration only (the run config Flower reads
  from it); nothing the lab ships executes on the hospital's machine.

Flower's own `--trusted-entities` is the other option the SuperNode has: it refuses FABs
not signed (ed25519, over the FAB's sha256) by a listed key. In flwr 1.42 only FABs that
a SuperLink fetched from Flower's platform carry signatures; a FAB sent with
`flwr run <dir>` has none and is refused outright. It says who published a FAB, not what
its ClientApp does; this module says which code runs.
"""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FLError

INSTALLED_CLIENTAPP = "fl_node.flower.app:client_app"
"""The only ClientApp reference a hospital's node runs, imported from its own installation."""

PROTECTED_PACKAGES = ("fl_node", "ledger")
"""Top-level names a FAB may not carry: they would stand in for the hospital's code."""

MODULE = "fl_node.flower.hospital"
POLL_INTERVAL_S = 0.5

log = logging.getLogger(__name__)


class ForeignClientAppError(FLError, PermissionError):
    """The run's FAB names a ClientApp other than the installed one, or ships a replacement for it."""


def check_fab(content: bytes) -> None:
    """Refuses a FAB unless its ClientApp is the installed one and it replaces none of our packages."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = archive.namelist()
            config: dict[str, Any] = tomllib.loads(archive.read("pyproject.toml").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ForeignClientAppError(f"the run's FAB is not a readable Flower App Bundle: {error}") from None
    components = config.get("tool", {}).get("flwr", {}).get("app", {}).get("components", {})
    reference = components.get("clientapp") if isinstance(components, dict) else None
    if reference != INSTALLED_CLIENTAPP:
        raise ForeignClientAppError(
            f"this node runs only its installed ClientApp {INSTALLED_CLIENTAPP!r} (which holds the ledger "
            f"gate); the FAB names {reference!r}"
        )
    shadowing = sorted(
        name
        for name in names
        if name.split("/", 1)[0].removesuffix(".py") in PROTECTED_PACKAGES and not name.endswith("/")
    )
    if shadowing:
        raise ForeignClientAppError(
            f"the FAB ships {', '.join(shadowing)}, which would replace the installed "
            f"{'/'.join(PROTECTED_PACKAGES)} code; this node runs only its installed ClientApp"
        )


def run_task(runtime_api_address: str, token: str) -> int:
    """Runs one ClientApp task of the SuperNode at `runtime_api_address`; returns the exit status."""
    from flwr.app import Message
    from flwr.app.error import Error
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=True,
        root_certificates=None,
        interceptors=[
            RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
            RuntimeTokenHttpInterceptor(token),
        ],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    context = None
    status, details, code = SubStatus.FAILED, "the ClientApp task did not finish", 1
    try:
        message, context, run, fab = pull_task_input(client)
        try:
            check_fab(fab.content)
        except ForeignClientAppError as refusal:
            log.error("run %d (FAB %s): refused: %s", run.run_id, run.fab_id, refusal)
            reply = Message(
                Error(code=ErrorCode.LOAD_CLIENT_APP_EXCEPTION, reason=str(refusal)), reply_to=message
            )
            details = f"refused: {refusal}"
        else:
            from .app import client_app  # the hospital's installation, never the FAB's files

            try:
                reply = client_app(message=message, context=context)
                status, details, code = SubStatus.COMPLETED, "", 0
            except Exception as error:
                log.exception("the installed ClientApp raised")
                reason = f"{type(error).__name__}: {error}"
                reply = Message(
                    Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message
                )
                details = reason
        push_message(client, reply, context)
    finally:
        push_task_output(client=client, context=context, sub_status=status, details=details)
        if heartbeat.is_running:
            heartbeat.stop()
        client.close()
    return code


def serve(
    runtime_api_address: str, *, auth_secret: bytes | None = None, poll_interval: float = POLL_INTERVAL_S
) -> None:
    """Executes the SuperNode's ClientApp tasks until interrupted (one process per task).

    With `auth_secret` (the bytes of the SuperNode's `--superexec-auth-secret-file`) task
    requests are HMAC-signed, so no other process on the machine can take the node's tasks.
    """
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor, SuperExecAuthHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    interceptors: list[Any] = [RuntimeVersionHttpInterceptor(component_name="SuperExec")]
    if auth_secret is not None:
        interceptors.append(
            SuperExecAuthHttpInterceptor(
                master_secret=auth_secret, protected_methods={"/flwr.proto.Runtime/AcquireTask"}
            )
        )
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=True,
        root_certificates=None,
        interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker(),
    )
    running: list[subprocess.Popen[bytes]] = []
    log.info("running only %s for the SuperNode at %s", INSTALLED_CLIENTAPP, runtime_api_address)
    try:
        while True:
            running = [task for task in running if task.poll() is None]
            acquired = client.AcquireTask(
                AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
            )
            if acquired.HasField("task") and acquired.token:
                command = [sys.executable, "-P", "-m", MODULE, "task"]
                command += ["--runtime-api-address", runtime_api_address, "--token", acquired.token]
                running.append(subprocess.Popen(command))
                continue
            time.sleep(poll_interval)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fl_node.flower.hospital serve|task --runtime-api-address HOST:PORT`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description="Run only the installed ClientApp"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="execute a SuperNode's ClientApp tasks (--isolation process)"
    )
    serve_parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's --host:--port")
    serve_parser.add_argument(
        "--superexec-auth-secret-file", type=Path, help="the same file the SuperNode was given (recommended)"
    )
    task_parser = commands.add_parser("task", help="run one task (started by `serve`)")
    task_parser.add_argument("--runtime-api-address", required=True)
    task_parser.add_argument("--token", required=True)
    args = parser.parse_args(argv)
    # Our loggers print once, here (the ClientApp would otherwise add Flower's handler too).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("fl_node")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    if args.command == "serve":
        try:
            secret = (
                None
                if args.superexec_auth_secret_file is None
                else args.superexec_auth_secret_file.read_bytes()
            )
            serve(args.runtime_api_address, auth_secret=secret)
        except KeyboardInterrupt:
            return 0
        return 0
    return run_task(args.runtime_api_address, args.token)


if __name__ == "__main__":
    sys.exit(main())
