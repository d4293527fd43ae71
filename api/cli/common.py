"""What every `sov` command group shares: settings, output, and turning errors into exits."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ledger.errors import LedgerError
from ledger.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The settings of this invocation (environment, `SOV_HOME`)."""
    return Settings()


def emit_json(value: Any) -> None:
    """Prints one JSON document on stdout (bytes as 0x-hex, sorted keys)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def emit_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Prints a table for people."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Prints `message` on stderr and returns the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=code)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turns the errors a user can act on into a clean message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (LedgerError, ValueError, OSError) as error:
            raise fail(str(error)) from None

    return wrapper


JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for programs")]
AccountOption = Annotated[
    str, typer.Option("--account", "-a", help="keystore alias that signs (devnet: dev0..dev9)")
]
