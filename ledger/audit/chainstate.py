"""Historical contract reads at a round's block, batched.

An audit asks the node, for every (round, participant), what `authorizationStatus` and
`datasetState` said at the round's block. Thousands of `eth_call`s one by one would cost a
round trip each; JSON-RPC batches send hundreds per request. Nodes that prune old state
(most non-archive nodes) answer such calls with an error: the reader then reports that the
node has no history, and the audit falls back to the event index alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, DatasetState
from ledger.errors import LedgerError, RPCError

log = logging.getLogger(__name__)

BATCH_SIZE = 400
# Phrases nodes use when they cannot serve state at an old block (geth, erigon, nethermind, besu).
_NO_HISTORY_HINTS = ("missing trie node", "historical state", "pruned", "state not available", "not available")


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """`authorizationStatus(dataset, grantee, purpose)` as of `block`."""

    dataset_id: int
    grantee: str
    purpose: bytes
    block: int


@dataclass(frozen=True, slots=True)
class StateQuery:
    """`datasetState(dataset)` as of `block`."""

    dataset_id: int
    block: int


class HistoricalReader:
    """Batched historical reads of `UsageGrants` and `DatasetRegistry` through a `LedgerClient`."""

    def __init__(self, client: LedgerClient, *, batch_size: int = BATCH_SIZE) -> None:
        self.client = client
        self.batch_size = batch_size
        self.has_history: bool | None = None
        self.reason = ""
        self._status_fn = client.abis["UsageGrants"].function("authorizationStatus", 3)
        self._state_fn = client.abis["DatasetRegistry"].function("datasetState", 1)

    def _calls(self, calls: Sequence[tuple[str, str, int]]) -> list[bytes | None]:
        """Raw return data of each (contract, calldata, block); None where the node refused."""
        results: list[bytes | None] = []
        provider: Any = self.client.transport.provider
        for start in range(0, len(calls), self.batch_size):
            chunk = calls[start : start + self.batch_size]
            requests = [
                ("eth_call", [{"to": self.client.deployment.address(contract), "data": data}, hex(block)])
                for contract, data, block in chunk
            ]
            try:
                responses = provider.make_batch_request(requests)
            except (AttributeError, NotImplementedError, OSError, ValueError) as error:
                # Providers without batch support: one request each (same answers, slower).
                log.debug("batch eth_call unavailable (%s); sending calls one by one", error)
                responses = [self._single(method, params) for method, params in requests]
            if isinstance(responses, dict):
                # A node that rejects batches answers with one error object for the whole batch.
                responses = [self._single(method, params) for method, params in requests]
            for response in responses:
                results.append(self._result(response))
        return results

    def _single(self, method: str, params: list[Any]) -> dict[str, Any]:
        try:
            return {"result": self.client.transport.request(method, params)}
        except RPCError as error:
            return {"error": {"message": str(error), **error.error}}

    def _result(self, response: Any) -> bytes | None:
        if "error" in response:
            message = str(response["error"].get("message", "")).lower()
            if any(hint in message for hint in _NO_HISTORY_HINTS):
                self.has_history = False
                self.reason = str(response["error"].get("message", ""))
            return None
        self.has_history = True if self.has_history is None else self.has_history
        return bytes.fromhex(str(response["result"])[2:])

    def authorization_statuses(self, queries: Iterable[StatusQuery]) -> dict[StatusQuery, AuthorizationStatus | None]:
        """The status each query's block gave (None where the node could not say)."""
        unique = list(dict.fromkeys(queries))
        calls = [
            (
                "UsageGrants",
                self._status_fn.encode_call([q.dataset_id, to_checksum_address(q.grantee), q.purpose]),
                q.block,
            )
            for q in unique
        ]
        answers: dict[StatusQuery, AuthorizationStatus | None] = {}
        for query, raw in zip(unique, self._calls(calls), strict=True):
            answers[query] = None if raw is None else AuthorizationStatus(int(self._status_fn.decode_output(raw)[0]))
        return answers

    def dataset_states(self, queries: Iterable[StateQuery]) -> dict[StateQuery, DatasetState | None]:
        """Deed holder, epoch and retirement at each query's block (None where the node could not say)."""
        unique = list(dict.fromkeys(queries))
        calls = [("DatasetRegistry", self._state_fn.encode_call([q.dataset_id]), q.block) for q in unique]
        answers: dict[StateQuery, DatasetState | None] = {}
        for query, raw in zip(unique, self._calls(calls), strict=True):
            if raw is None:
                answers[query] = None
                continue
            owner, epoch, retired = self._state_fn.decode_output(raw)
            answers[query] = DatasetState(to_checksum_address(owner), int(epoch), bool(retired))
        return answers


def probe_history(client: LedgerClient, block: int) -> tuple[bool, str]:
    """Whether the node answers state reads at `block` (archive or recent), and why not."""
    try:
        client.job_count(block=block)
    except RPCError as error:
        return False, str(error)
    except LedgerError as error:  # a revert at that block still proves the state exists
        return True, str(error)
    return True, ""
