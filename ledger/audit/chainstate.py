"""Historical contract reads at a round's block, batched.

An audit asks the node, for every (round, participant), what `authorizationStatus` and
`datasetState` said at the round's block. Thousands of `eth_call`s one by one would cost a
round trip each; JSON-RPC batches send hundreds per request. Nodes that prune old state
(most non-archive nodes) answer such calls with an error: the reader then reports that the
node has no history, and the audit falls back to the event index alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from ledger.chain.client import LedgerClient, _grant_record
from ledger.chain.types import AuthorizationStatus, BlockRef, DatasetState, GrantTerms
from ledger.errors import LedgerError, RPCError

log = logging.getLogger(__name__)

BATCH_SIZE = 400
# Phrases nodes use when they cannot serve state at an old block (geth, erigon, nethermind, besu).
_NO_HISTORY_HINTS = (
    "missing trie node",
    "historical state",
    "pruned",
    "state not available",
    "not available",
    "blockoutofrange",  # anvil --prune-history: "BlockOutOfRangeError: block height is N but requested was M"
)


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


_Q = TypeVar("_Q", StatusQuery, StateQuery)


class HistoricalReader:
    """Batched historical reads of `UsageGrants` and `DatasetRegistry` through a `LedgerClient`."""

    def __init__(self, client: LedgerClient, *, batch_size: int = BATCH_SIZE) -> None:
        self.client = client
        self.batch_size = batch_size
        self.has_history: bool | None = None
        self.reason = ""
        self._status_fn = client.abis["UsageGrants"].function("authorizationStatus", 3)
        self._state_fn = client.abis["DatasetRegistry"].function("datasetState", 1)
        self._grant_fn = client.abis["UsageGrants"].function("getGrant", 3)

    def _send(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """The raw answers (`result` or `error` objects) of `requests`, batched, in request order."""
        answers: list[Any] = []
        provider: Any = self.client.transport.provider
        for start in range(0, len(requests), self.batch_size):
            chunk = list(requests[start : start + self.batch_size])
            responses = self._batch(provider, chunk)
            if responses is None:
                # No batch support (provider or node): one request each, same answers, slower.
                responses = [self._single(method, params) for method, params in chunk]
            answers.extend(responses)
        return answers

    def _calls(self, calls: Mapping[_Q, tuple[str, str, int]]) -> dict[_Q, bytes | None]:
        """Raw return data of each query's (contract, calldata, block); None where the node refused."""
        address = self.client.deployment.address
        answers = self.raw_calls(
            [(address(contract), data, block) for contract, data, block in calls.values()]
        )
        return dict(zip(calls, answers, strict=True))

    def raw_calls(self, calls: Sequence[tuple[str, str, int]]) -> list[bytes | None]:
        """Return data of each `eth_call` (address, calldata, block); None where the node refused."""
        requests = [("eth_call", [{"to": to, "data": data}, hex(block)]) for to, data, block in calls]
        return [self._result(response) for response in self._send(requests)]

    def codes(self, queries: Sequence[tuple[str, int]]) -> list[bytes | None]:
        """`eth_getCode` of each (address, block); None where the node could not say."""
        requests = [("eth_getCode", [address, hex(block)]) for address, block in queries]
        return [self._result(response) for response in self._send(requests)]

    def headers(self, numbers: Sequence[int]) -> list[BlockRef]:
        """Number, hash and timestamp of each block (headers are kept by every node, pruned or not)."""
        answers = self._send([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out = []
        for number, answer in zip(numbers, answers, strict=True):
            raw = answer.get("result") if isinstance(answer, dict) else None
            if not raw:
                raise RPCError(
                    f"block {number} is not available at {self.client.rpc_url}: {answer}",
                    method="eth_getBlockByNumber",
                    url=self.client.rpc_url,
                )
            out.append(BlockRef(int(raw["number"], 16), str(raw["hash"]), int(raw["timestamp"], 16)))
        return out

    def _batch(self, provider: Any, requests: list[tuple[str, list[Any]]]) -> list[Any] | None:
        """One JSON-RPC batch (a JSON array of requests), answers in request order; None if unsupported."""
        post = getattr(provider, "post", None)
        try:
            if callable(post):
                # `ledger.chain.http.KeepAliveHTTPProvider`: send the JSON array ourselves.
                body = json.dumps(
                    [
                        {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                        for i, (m, p) in enumerate(requests)
                    ]
                ).encode()
                answer = json.loads(post(body))
            else:
                answer = provider.make_batch_request(requests)
        except (AttributeError, NotImplementedError, OSError, ValueError, TypeError) as error:
            log.debug("batch eth_call unavailable (%s); sending calls one by one", error)
            return None
        if not isinstance(answer, list) or len(answer) != len(requests):
            # A node that rejects batches answers with one error object for the whole batch.
            return None
        if all(isinstance(item, dict) and isinstance(item.get("id"), int) for item in answer):
            answer = sorted(answer, key=lambda item: item["id"])
        return list(answer)

    def _single(self, method: str, params: list[Any]) -> dict[str, Any]:
        try:
            return {"result": self.client.transport.request(method, params)}
        except RPCError as error:
            return {"error": {"message": str(error), **error.error}}

    def _result(self, response: Any) -> bytes | None:
        if "error" in response:
            message = str(response["error"].get("message", ""))
            if any(hint in message.lower() for hint in _NO_HISTORY_HINTS):
                self.has_history = False
                self.reason = message
            return None
        self.has_history = True if self.has_history is None else self.has_history
        return bytes.fromhex(str(response["result"])[2:])

    def authorization_statuses(
        self, queries: Iterable[StatusQuery]
    ) -> dict[StatusQuery, AuthorizationStatus | None]:
        """The status each query's block gave (None where the node could not say)."""
        # Calldata does not depend on the block: encode each (dataset, grantee, purpose) once.
        encoded: dict[tuple[int, str, bytes], str] = {}
        calls: dict[StatusQuery, tuple[str, str, int]] = {}
        for q in queries:
            key = (q.dataset_id, q.grantee, q.purpose)
            if key not in encoded:
                args = [q.dataset_id, checksum_address(q.grantee), q.purpose]
                encoded[key] = self._status_fn.encode_call(args)
            calls[q] = ("UsageGrants", encoded[key], q.block)
        answers: dict[StatusQuery, AuthorizationStatus | None] = {}
        for query, raw in self._calls(calls).items():
            # `Status` is a uint8 enum: one static word.
            answers[query] = (
                None if raw is None or len(raw) != 32 else AuthorizationStatus(int.from_bytes(raw))
            )
        return answers

    def grant_terms(self, queries: Iterable[StatusQuery]) -> dict[StatusQuery, GrantTerms | None]:
        """The grant's terms (`getGrant`) at each query's block (None where the node could not say)."""
        calls = {
            q: (
                "UsageGrants",
                self._grant_fn.encode_call([q.dataset_id, checksum_address(q.grantee), q.purpose]),
                q.block,
            )
            for q in queries
        }
        answers: dict[StatusQuery, GrantTerms | None] = dict.fromkeys(calls)
        for query, raw in self._calls(calls).items():
            if raw is None:
                continue
            # Too short (no code at that block, or a lying node), or values no grant has (GrantTermsError
            # is a ValueError): the node did not say.
            with contextlib.suppress(DecodingError, ValueError):
                (record,) = self._grant_fn.decode_output(raw)
                answers[query] = _grant_record(record).terms
        return answers

    def dataset_states(self, queries: Iterable[StateQuery]) -> dict[StateQuery, DatasetState | None]:
        """Deed holder, epoch and retirement at each query's block (None where the node could not say)."""
        encoded: dict[int, str] = {}
        calls: dict[StateQuery, tuple[str, str, int]] = {}
        for q in queries:
            if q.dataset_id not in encoded:
                encoded[q.dataset_id] = self._state_fn.encode_call([q.dataset_id])
            calls[q] = ("DatasetRegistry", encoded[q.dataset_id], q.block)
        answers: dict[StateQuery, DatasetState | None] = {}
        for query, raw in self._calls(calls).items():
            if raw is None or len(raw) != 96:
                answers[query] = None
                continue
            # (address owner, uint32 epoch, bool retired): three static words.
            answers[query] = DatasetState(
                checksum_address("0x" + raw[12:32].hex()), int.from_bytes(raw[32:64]), raw[95] == 1
            )
        return answers


@functools.lru_cache(maxsize=4096)
def checksum_address(address: str) -> str:
    """EIP-55 form, memoised: an audit meets the same few owners thousands of times."""
    return str(to_checksum_address(address))


def probe_history(client: LedgerClient, block: int) -> tuple[bool, str]:
    """Whether the node answers state reads at `block` (archive or recent), and why not."""
    try:
        client.job_count(block=block)
    except RPCError as error:
        return False, str(error)
    except LedgerError as error:  # a revert at that block still proves the state exists
        return True, str(error)
    return True, ""
