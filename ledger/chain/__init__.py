"""The chain side of `ledger`: a typed facade over the three contracts (`LedgerClient`).

Names are imported lazily: `ledger.deploy` uses the submodules, and the client uses
`ledger.deploy`, so an eager import here would be circular.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LedgerClient": "ledger.chain.client",
    "WaitPolicy": "ledger.chain.sender",
    "RetryPolicy": "ledger.chain.transport",
    "AuthorizationStatus": "ledger.chain.types",
    "BlockRef": "ledger.chain.types",
    "DatasetState": "ledger.chain.types",
    "DecodedEvent": "ledger.chain.types",
    "GrantRecord": "ledger.chain.types",
    "GrantTerms": "ledger.chain.types",
    "JobRecord": "ledger.chain.types",
    "Receipt": "ledger.chain.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ledger.chain' has no attribute {name!r}")
