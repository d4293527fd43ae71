"""`sov account create|list`: encrypted keystore accounts under `$SOV_HOME/keystore`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ledger.keys import PASSWORD_ENV, Keystore

from .common import JsonFlag, console, emit_json, emit_table, settings, user_errors

app = typer.Typer(
    help="Keystore accounts (encrypted with eth-keyfile); dev0..dev9 exist on devnets.", no_args_is_help=True
)


def _password() -> str:
    # The environment wins so scripts need no terminal; otherwise ask, twice, without echo.
    return os.environ.get(PASSWORD_ENV) or typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command()
@user_errors
def create(
    alias: Annotated[str, typer.Argument(help="the name commands use for this account (--account ALIAS)")],
    import_key: Annotated[
        bool, typer.Option("--import-key", help="read an existing private key (hex) from the prompt instead")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Create a new account (or import a key) encrypted with a password; prints its address only."""
    key: bytes | None = None
    if import_key:
        text = typer.prompt("private key (hex)", hide_input=True).strip().removeprefix("0x")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError("the private key must be 32 bytes of hex") from None
        if len(key) != 32:
            raise ValueError(f"the private key must be 32 bytes of hex, got {len(key)} bytes")
    address = Keystore(settings()).create(alias, _password(), private_key=key)
    if json:
        emit_json({"alias": alias, "address": address})
    else:
        console.print(f"account {alias} created: {address}")


@app.command("list")
@user_errors
def list_(json: JsonFlag = False) -> None:
    """Aliases and addresses (no key is decrypted)."""
    keystore = Keystore(settings())
    rows = [{"alias": alias, "address": keystore.address(alias)} for alias in keystore.aliases()]
    if json:
        emit_json(rows)
    else:
        emit_table(
            f"{len(rows)} account(s)", ["alias", "address"], [[r["alias"], r["address"]] for r in rows]
        )
