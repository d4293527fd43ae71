"""`sov watch`: print dataset, grant, job and round events as they land, as CloudEvents JSON lines.

Every line is one CloudEvent 1.0 in structured JSON form (see `ledger.events`). Its `id` is the
cursor: `sov watch --cursor <id>` resumes right after that event, with nothing repeated and
nothing skipped. `--from-block N` starts at a block instead; without either the watch starts
at the next block. When the watch ends (`--until-block`, `--no-follow`, Ctrl-C) the command
to resume is printed on stderr; SIGTERM ends it as Ctrl-C does.

The chain client (web3) loads when the command runs, not for `--help`.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .common import err_console, settings, user_errors

if TYPE_CHECKING:
    from ledger.events import ChangeEvent, EventFeed

FORMATS = ("jsonl", "text")


def _line(event: ChangeEvent, output: str) -> str:
    if output == "jsonl":
        return event.to_json()
    kind = event.type.removeprefix("org.sovereign-ledger.")
    return f"{event.time} block {event.block_number} {kind} {event.subject} id={event.id}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _resume_hint(feed: EventFeed) -> str:
    if feed.cursor is not None:
        return f"sov watch --cursor {feed.cursor}"
    return f"sov watch --from-block {feed.next_block}"


@user_errors
def watch(
    from_block: Annotated[
        int | None, typer.Option("--from-block", min=0, help="start at this block (0: all history)")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="resume after the event with this id (a line's id)")
    ] = None,
    confirmations: Annotated[
        int, typer.Option(min=0, help="emit an event once this many blocks sit on its block (devnets: 0)")
    ] = 0,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            help="only these types or groups (repeatable or comma-separated): dataset, grant, job, round, "
            "grant.revoked, ...",
        ),
    ] = None,
    until_block: Annotated[
        int | None, typer.Option("--until-block", min=0, help="stop after this block")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="keep watching (default) or stop at the head")
    ] = True,
    poll_interval: Annotated[
        float, typer.Option(min=0.05, max=60.0, help="seconds between polls of the chain")
    ] = 1.0,
    output: Annotated[str, typer.Option("--format", help="jsonl (CloudEvents, default) or text")] = "jsonl",
    json: Annotated[bool, typer.Option("--json", help="CloudEvents JSON lines (the default format)")] = False,
) -> None:
    """Print dataset, grant, job and round events as they land (CloudEvents 1.0 JSON lines)."""
    from ledger.chain.client import LedgerClient
    from ledger.events import EventFeed

    if output not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {output!r}")
    if json:
        output = "jsonl"
    if from_block is not None and cursor is not None:
        raise ValueError("pass either --from-block or --cursor, not both (the cursor names its own block)")
    client = LedgerClient.connect(settings())
    feed = EventFeed(client, confirmations=confirmations, types=tuple(event_type or ()))
    if cursor is not None:
        feed.resume_after(cursor)
    elif from_block is not None:
        feed.start_at(from_block)
    else:
        feed.start_at_head()
    stop_at = until_block
    if not follow:
        target = feed.target_block()
        stop_at = target if stop_at is None else min(stop_at, target)
    # A service manager's stop (systemd, docker: SIGTERM) ends the watch as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for event in feed.follow(poll_interval=poll_interval, until_block=stop_at):
            sys.stdout.write(_line(event, output) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except Exception:
        # The node went away mid-watch (or worse): say where to pick up before the error line.
        err_console.print(f"stopped after block {feed.next_block - 1}; resume with: {_resume_hint(feed)}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    err_console.print(f"watched to block {feed.next_block - 1}; resume with: {_resume_hint(feed)}")
