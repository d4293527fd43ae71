"""The exception tree of `ledger`.

Every error raised by `ledger` derives from `LedgerError`; each subclass also inherits
the builtin it means, so callers can catch narrowly (`GrantExpiredError`), by kind
(`PermissionError`) or broadly (`LedgerError`). Contract reverts are decoded into
`ContractRevertError` subclasses carrying the Solidity error name and arguments.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by `ledger`."""


class ConfigurationError(LedgerError, ValueError):
    """Settings, deployment manifest or data directory are missing or inconsistent."""


class UnreachableError(LedgerError, ConnectionError):
    """A chain RPC endpoint or an IPFS node did not answer; the message names its URL."""


class ContentStoreError(LedgerError):
    """Root of content-store failures."""


class InvalidCIDError(ContentStoreError, ValueError):
    """A string is not a valid CID."""


class ContentNotFoundError(ContentStoreError, LookupError):
    """The store holds no block for a CID."""


class ContentIntegrityError(ContentStoreError):
    """Bytes read for a CID do not hash to that CID; they are never returned."""
