"""`sov`: the command line of sovereign-ledger. Each command group lives in its own module.

Command modules are imported only when their command runs (or its own `--help` is asked
for): `sov --help` lists them from the table below without importing any, so start-up does
not pay for training, the web service or the chain client of commands that do not run.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click
import typer
from typer.core import TyperGroup

from .common import error_code, error_message, fail, is_user_error


class LazyCommand:
    """Where a command lives (`module`, `attribute`) and the one line `sov --help` shows for it."""

    def __init__(self, module: str, attribute: str, summary: str) -> None:
        self.module = module
        self.attribute = attribute
        self.summary = summary

    def load(self, name: str) -> click.Command:
        """Imports the module and turns its Typer app (or command function) into a click command."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            command = typer.main.get_command(target)
        else:
            single = typer.Typer()
            single.command(name)(target)
            command = typer.main.get_command(single)
        command.name = name
        if isinstance(command, TyperGroup):
            # click suggests close command names itself; typer's own suggestion would repeat it.
            command.suggest_commands = False
        return command


# name -> where it lives; the order is the order of `sov --help`.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "devnet": LazyCommand(
        "api.cli.devnet", "app", "The embedded anvil devnet (its chain is kept under SOV_HOME)."
    ),
    "network": LazyCommand(
        "api.cli.network", "app", "Join a shared network: verify its contracts and keep its manifest."
    ),
    "account": LazyCommand("api.cli.account", "app", "Keystore accounts; fund accounts on a devnet."),
    "deploy": LazyCommand(
        "api.cli.devnet", "deploy", "Deploy the three contracts and write the deployment manifest."
    ),
    "dataset": LazyCommand(
        "api.cli.dataset", "app", "Dataset deeds: register a content hash, show, list, retire, transfer."
    ),
    "grant": LazyCommand(
        "api.cli.grant", "app", "Usage grants: issue, revoke, check, list, and off-chain signed grants."
    ),
    "token": LazyCommand(
        "api.cli.token", "app", "Access tokens: sign in to a service with your wallet (SIWE), introspect."
    ),
    "index": LazyCommand("api.cli.index", "app", "The local event index (SQLite) of the contracts' events."),
    "store": LazyCommand("api.cli.store", "app", "The content store: put, get, export and import CAR files."),
    "cid": LazyCommand("api.cli.store", "cid_command", "Print the CIDv1 of a file (nothing is stored)."),
    "node": LazyCommand("api.cli.node", "app", "The hospital's side: run a gated Flower SuperNode."),
    "job": LazyCommand(
        "api.cli.job", "app", "The lab's side: create, run, inspect and export training jobs."
    ),
    "train": LazyCommand("api.cli.train", "train", "Run a gated federated job on this machine (embedded)."),
    "audit": LazyCommand(
        "api.cli.audit", "audit", "Audit a model: every dataset, grant and round behind it."
    ),
    "impact": LazyCommand(
        "api.cli.audit", "impact", "Which jobs and models a dataset or a grant contributed to."
    ),
    "watch": LazyCommand(
        "api.cli.watch", "watch", "Print dataset, grant, job and round events as they land (CloudEvents)."
    ),
    "demo": LazyCommand(
        "api.cli.demo", "demo", "The one-process demo: devnet, hospitals, a job and its audit."
    ),
    "serve": LazyCommand("api.cli.serve", "serve", "The HTTP API and web page."),
}


def _available(entry: LazyCommand) -> bool:
    # A command group another part of the project has not shipped yet is not listed.
    path = os.path.join(os.path.dirname(__file__), entry.module.rsplit(".", 1)[-1] + ".py")
    return os.path.exists(path)


class SovGroup(TyperGroup):
    """The top-level group: lazy commands, and every error as one line (JSON too with `--json`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Eagerly registered commands first, then the lazy ones in table order."""
        eager = [name for name in super().list_commands(ctx) if name not in LAZY_COMMANDS]
        lazy = [name for name, entry in LAZY_COMMANDS.items() if name in self.commands or _available(entry)]
        return eager + lazy

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The loaded command; for a lazy one not loaded yet, a stub that carries its summary."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = LAZY_COMMANDS.get(cmd_name)
        if entry is None or not _available(entry):
            return None
        return click.Command(cmd_name, short_help=entry.summary, help=entry.summary)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Loads the lazy command that is about to run."""
        if args and args[0] not in self.commands and args[0] in LAZY_COMMANDS:
            entry = LAZY_COMMANDS[args[0]]
            if _available(entry):
                self.add_command(entry.load(args[0]), args[0])
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            import difflib

            known = self.list_commands(ctx)
            close = difflib.get_close_matches(args[0], known)
            suggestion = f"did you mean {', '.join(close)}? " if close else ""
            raise click.UsageError(
                f"no command {args[0]!r}; {suggestion}the commands are {', '.join(known)}", ctx
            )
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Runs the command; in standalone mode every failure ends as one line and an exit status."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        json_output = "--json" in argv
        try:
            result = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except click.UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":
                # Typer has printed the help already (rich); plain click carries it as the message.
                if error.format_message().strip():
                    click.echo(error.format_message(), err=True)
                raise SystemExit(error.exit_code) from None
            hint = ""
            if error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            raise SystemExit(
                _exit_code(
                    fail(error.format_message() + hint, 2, json_output=json_output, error_code="usage")
                )
            ) from None
        except click.ClickException as error:
            raise SystemExit(
                _exit_code(fail(error.format_message(), error.exit_code, json_output=json_output))
            ) from None
        except click.exceptions.Abort:
            raise SystemExit(
                _exit_code(
                    fail("aborted, nothing more was done", json_output=json_output, error_code="aborted")
                )
            ) from None
        except Exception as error:
            if not is_user_error(error) and logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            message = error_message(error)
            if not is_user_error(error):
                message = (
                    f"unexpected {type(error).__name__}: {message} "
                    "(a bug in sov; run with --verbose for the traceback)"
                )
            raise SystemExit(
                _exit_code(fail(message, json_output=json_output, error_code=error_code(error)))
            ) from None
        raise SystemExit(result if isinstance(result, int) else 0)


def _exit_code(exit_: typer.Exit) -> int:
    return int(exit_.exit_code)


app = typer.Typer(
    name="sov",
    cls=SovGroup,
    help="A data sovereignty ledger for federated learning: datasets, grants, gated training, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log RPC calls and decisions (DEBUG)"),
) -> None:
    """Set up logging; the data directory is SOV_HOME (default ~/.sovereign-ledger)."""
    level = (
        logging.DEBUG if verbose else getattr(logging, os.environ.get("SOV_LOG_LEVEL", "WARNING").upper(), 30)
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    app()
