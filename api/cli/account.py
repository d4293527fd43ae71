"""`sov account create|list|fund`: encrypted keystore accounts under `$SOV_HOME/keystore`."""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import JsonFlag, console, emit_json, emit_table, settings, user_errors

if TYPE_CHECKING:
    from ledger.chain.transport import Transport

app = typer.Typer(
    help="Keystore accounts (encrypted with eth-keyfile); dev0..dev9 exist on devnets; fund on a devnet.",
    no_args_is_help=True,
)

_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(eth|ether|gwei|wei)\s*$", re.IGNORECASE)
_WEI_PER = {"eth": 10**18, "ether": 10**18, "gwei": 10**9, "wei": 1}
# More than any devnet test needs, far less than anvil's 2**256 ceiling.
MAX_FUND_WEI = 10**6 * 10**18


def parse_amount(text: str) -> int:
    """Wei from an amount with its unit: `1eth`, `0.5 ether`, `20gwei`, `1000wei`."""
    from ledger.errors import InvalidArgumentError

    match = _AMOUNT.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"amount {text!r} is not an amount of ether: give a number and a unit, e.g. 1eth, 0.5eth, "
            "20gwei or 1000wei"
        )
    try:
        wei = Decimal(match.group(1)) * _WEI_PER[match.group(2).lower()]
    except InvalidOperation:
        raise InvalidArgumentError(f"amount {text!r} is not a number of ether") from None
    if wei != wei.to_integral_value():
        raise InvalidArgumentError(f"amount {text!r} is not a whole number of wei")
    if not 0 < wei <= MAX_FUND_WEI:
        raise InvalidArgumentError(
            f"amount {text!r} is out of range: give more than 0 and at most 1000000eth"
        )
    return int(wei)


def _password() -> str:
    from ledger.keys import PASSWORD_ENV

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
    from ledger.keys import Keystore

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
    from ledger.keys import Keystore

    keystore = Keystore(settings())
    rows = [{"alias": alias, "address": keystore.address(alias)} for alias in keystore.aliases()]
    if json:
        emit_json(rows)
    else:
        emit_table(
            f"{len(rows)} account(s)", ["alias", "address"], [[r["alias"], r["address"]] for r in rows]
        )


@app.command()
@user_errors
def fund(
    address: Annotated[str, typer.Argument(help="the address to fund (or a keystore alias)")],
    amount: Annotated[str, typer.Option("--amount", help="how much: 1eth, 0.5eth, 20gwei, 1000wei")] = "1eth",
    json: JsonFlag = False,
) -> None:
    """Give an account ether on a devnet (anvil_setBalance, else a transfer from dev0); refused elsewhere."""
    from ledger.chain.client import resolve_rpc_url
    from ledger.chain.transport import Transport, make_provider
    from ledger.errors import InvalidArgumentError
    from ledger.keys import DEVNET_CHAIN_ID, Keystore

    from . import parse

    config = settings()
    wei = parse_amount(amount)
    if address.startswith("0x"):
        who = parse.address(address, "address to fund")
    else:
        keystore = Keystore(config)
        if address not in keystore.aliases():
            raise InvalidArgumentError(
                f"{address!r} is neither an address (0x followed by 40 hex digits) nor an alias of this "
                f"keystore ({', '.join(keystore.aliases()) or 'it has none'})"
            )
        who = keystore.address(address)
    url = resolve_rpc_url(config)
    transport = Transport(make_provider(url), url)
    chain_id = int(transport.request("eth_chainId", []), 16)
    if chain_id != DEVNET_CHAIN_ID:
        raise PermissionError(
            f"chain {chain_id} at {url} is not a devnet (chain id {DEVNET_CHAIN_ID}): ether there is real "
            "or belongs to someone; ask the network's operator to fund the account"
        )
    before = int(transport.request("eth_getBalance", [who, "latest"]), 16)
    method = _fund(transport, who, before, wei)
    after = int(transport.request("eth_getBalance", [who, "latest"]), 16)
    document = {
        "address": who,
        "funded_wei": str(wei),
        "balance_wei": str(after),
        "balance_eth": str(Decimal(after) / 10**18),
        "method": method,
        "chain_id": chain_id,
    }
    if json:
        emit_json(document)
    else:
        console.print(f"funded {who} with {amount.strip()} ({method}); balance {document['balance_eth']} ETH")


def _fund(transport: Transport, who: str, before: int, wei: int) -> str:
    """Adds `wei` to `who`'s balance: anvil's (or hardhat's) setBalance, else a dev0 transfer."""
    from ledger.errors import RPCError

    for method in ("anvil_setBalance", "hardhat_setBalance"):
        try:
            transport.request(method, [who, hex(before + wei)])
        except RPCError as error:
            if (
                error.code in (-32601, -32604)
                or "not found" in str(error).lower()
                or "not supported" in str(error).lower()
            ):
                continue
            raise
        return method
    import time

    from ledger.errors import TransactionTimeoutError
    from ledger.keys import DEVNET_CHAIN_ID, dev_account

    # A node without either method (another devnet implementation): dev0 pays.
    funder = dev_account(0)
    nonce = int(transport.request("eth_getTransactionCount", [funder.address, "pending"]), 16)
    gas_price = int(transport.request("eth_gasPrice", []), 16)
    tx: dict[str, Any] = {
        "to": who,
        "value": wei,
        "gas": 21_000,
        "gasPrice": gas_price,
        "nonce": nonce,
        "chainId": DEVNET_CHAIN_ID,
    }
    signed = funder.sign_transaction(tx)
    tx_hash = transport.request("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    deadline = time.monotonic() + 60
    while transport.request("eth_getTransactionReceipt", [tx_hash]) is None:
        if time.monotonic() > deadline:
            raise TransactionTimeoutError(f"the transfer funding {who} ({tx_hash}) was not mined within 60 s")
        time.sleep(0.2)
    return "transfer from dev0"
