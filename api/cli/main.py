"""`sov`: the command line of sovereign-ledger. Each command group lives in its own module."""

from __future__ import annotations

import logging
import os

import typer

from . import account, audit, dataset, demo, devnet, grant, index, serve, store, train

app = typer.Typer(
    name="sov",
    help="A data sovereignty ledger for federated learning: datasets, grants, gated training, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(devnet.app, name="devnet")
app.add_typer(account.app, name="account")
app.command("deploy")(devnet.deploy)
app.add_typer(dataset.app, name="dataset")
app.add_typer(grant.app, name="grant")
app.add_typer(index.app, name="index")
app.add_typer(store.app, name="store")
app.command("cid")(store.cid_command)
app.command("train")(train.train)
app.command("audit")(audit.audit)
app.command("impact")(audit.impact)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


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
