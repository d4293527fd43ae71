"""What every `sov` command group shares: settings, output, and turning errors into exits.

Start-up matters here: `sov --help` and the quick commands must not pay for web3, eth_account,
pydantic or rich before they need them, so this module imports only typer and the standard
library; the rest is imported on first use (`settings()`, the first `console.print`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ledger.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

# Wider than any id, CID, URL or table row: output that goes to a file or a pipe is never
# hard-wrapped (rich would otherwise fold at 80 columns when stdout is not a terminal).
UNWRAPPED_WIDTH = 10_000


def make_console(*, stderr: bool = False) -> Console:
    """A rich console that never hard-wraps text; tables fit the terminal only when there is one."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty() and os.environ.get("TERM") != "dumb"
    return Console(
        stderr=stderr,
        soft_wrap=True,
        width=None if terminal else UNWRAPPED_WIDTH,
        highlight=False,
    )


class LazyConsole:
    """A rich `Console` made on first use, for the stream in use at that moment."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None
        self._stream: Any = None

    def get(self) -> Console:
        """The console for the current stdout/stderr (tests swap the streams between calls)."""
        stream = sys.stderr if self._stderr else sys.stdout
        if self._console is None or stream is not self._stream:
            self._console = make_console(stderr=self._stderr)
            self._stream = stream
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """`Console.print` on the current stream."""
        self.get().print(*objects, **kwargs)

    @property
    def is_terminal(self) -> bool:
        """Whether the stream is a terminal (progress bars only then)."""
        return self.get().is_terminal


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def settings() -> Settings:
    """The settings of this invocation (environment, `SOV_HOME`)."""
    from ledger.settings import Settings

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
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def fail(message: str, code: int = 1, *, json_output: bool = False, error_code: str = "error") -> typer.Exit:
    """Prints `message` as one line on stderr (and, for `--json`, an error object on stdout).

    Returns the exit to raise.
    """
    line = " ".join(message.split())
    if json_output:
        emit_json({"error": {"code": error_code, "message": line}})
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    return typer.Exit(code=code)


# The builtin kinds a user can act on; everything from `ledger` is one too (LedgerError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, LookupError, OSError, PermissionError)

_BUILTIN_CODES = {
    "FileNotFoundError": "file_not_found",
    "IsADirectoryError": "is_a_directory",
    "NotADirectoryError": "not_a_directory",
    "FileExistsError": "file_exists",
    "PermissionError": "permission_denied",
    "ValueError": "invalid_argument",
    "LookupError": "not_found",
    "KeyError": "not_found",
    "ConnectionError": "unreachable",
    "TimeoutError": "timeout",
}


def error_code(error: BaseException) -> str:
    """A stable snake_case code for an error: `DeploymentMismatchError` -> `deployment_mismatch`."""
    name = type(error).__name__
    if name in _BUILTIN_CODES:
        return _BUILTIN_CODES[name]
    if isinstance(error, OSError) and type(error).__module__ == "builtins":
        return "os_error"
    stem = name.removesuffix("Error") or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()


def error_message(error: BaseException) -> str:
    """What to tell the user: the error's own message, or a plain sentence for the OS's errors."""
    from ledger.errors import LedgerError

    if isinstance(error, OSError) and not isinstance(error, LedgerError) and error.filename is not None:
        path = error.filename
        if isinstance(error, FileNotFoundError):
            return f"file not found: {path}"
        if isinstance(error, IsADirectoryError):
            return f"{path} is a directory, not a file"
        if isinstance(error, NotADirectoryError):
            return f"{path}: a part of this path is not a directory"
        if isinstance(error, PermissionError):
            return f"permission denied: {path}"
        return f"{path}: {error.strerror or error}"
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    text = str(error)
    return text or type(error).__name__


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is one a user can act on (bad input, missing file, unreachable node, a revert)."""
    from ledger.errors import LedgerError

    return isinstance(error, (LedgerError, *USER_ERRORS))


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turns the errors a user can act on into one clean line and exit status 1.

    With `--json` (a `json` parameter that is true) the error is also printed on stdout as
    `{"error": {"code": ..., "message": ...}}`.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if not is_user_error(error):
                raise
            raise fail(
                error_message(error), json_output=bool(kwargs.get("json")), error_code=error_code(error)
            ) from None

    return wrapper


def confirm(question: str, yes: bool, *, json_output: bool = False) -> None:
    """Asks `question` unless `--yes` was given; refuses (exit 1) unless the answer is yes."""
    if yes:
        return
    try:
        answer = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        answer = False
    if not answer:
        raise fail(
            f"not confirmed, nothing was changed (pass --yes to skip the question): {question}",
            json_output=json_output,
            error_code="not_confirmed",
        )


JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for programs")]
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
AccountOption = Annotated[
    str, typer.Option("--account", "-a", help="keystore alias that signs (devnet: dev0..dev9)")
]
