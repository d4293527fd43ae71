"""The exception tree of `fl_node`: every error derives from `FLError`."""

from __future__ import annotations


class FLError(Exception):
    """Root of every error raised by `fl_node`."""


class RoundRefusedError(FLError, PermissionError):
    """A node refused a round; `reason` is a stable code (`revoked`, `expired`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class QuorumError(FLError, RuntimeError):
    """Too few valid updates arrived for the round; nothing was committed."""


class RoundNotCommittedError(FLError, RuntimeError):
    """The round's bytes could not be stored, so the round was not committed."""


class NodeUnavailableError(FLError, ConnectionError):
    """A node process died or did not answer."""
