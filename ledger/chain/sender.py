"""Writes: estimate (reverts surface here, before anything is sent) -> sign -> send -> wait.

One `NonceManager` per (node, account) per process hands out nonces under a lock, so many
threads can have transactions in flight from one account; it resyncs from the node when
the node says a nonce was used elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger.chain.revert import RevertDecoder, revert_data_of
from ledger.chain.transport import Transport
from ledger.errors import (
    ContractRevertError,
    RPCError,
    TransactionFailedError,
    TransactionTimeoutError,
    UnreachableError,
)

log = logging.getLogger(__name__)

# Gas estimates are exact on anvil and hardhat; the margin covers state that changes between
# estimate and inclusion (e.g. a storage slot going from zero to non-zero).
GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5
FEE_CACHE_S = 1.0
DEFAULT_PRIORITY_FEE = 1_000_000_000


class NonceManager:
    """Hands out consecutive nonces for one account; `lock` is held from allocation to send.

    The local counter is trusted only while this process has transactions of the account
    in flight (they pin the sequence). When none is, the next nonce comes from the node:
    a counter left over from a node that was restarted without its state would otherwise
    produce a nonce gap, and a transaction that never mines.
    """

    def __init__(self, fetch_pending: Callable[[], int]) -> None:
        self.lock = threading.RLock()
        self._fetch_pending = fetch_pending
        self._next: int | None = None
        self._in_flight = 0

    def peek(self, pending: int | None = None) -> int:
        """The nonce the next transaction gets; `pending` is the node's pending count, if just read."""
        with self.lock:
            if self._next is None or self._in_flight == 0:
                self._next = self._fetch_pending() if pending is None else pending
            return self._next

    def advance(self) -> None:
        """The peeked nonce was accepted by the node; its transaction is now in flight."""
        with self.lock:
            assert self._next is not None
            self._next += 1
            self._in_flight += 1

    def settled(self) -> None:
        """A transaction handed out by `advance` was mined (or given up on)."""
        with self.lock:
            self._in_flight = max(self._in_flight - 1, 0)

    def resync(self) -> None:
        """Forget the local counter: the next `peek` asks the node."""
        with self.lock:
            self._next = None


_MANAGERS: dict[tuple[str, str], NonceManager] = {}
_MANAGERS_LOCK = threading.Lock()


def nonce_manager(rpc_url: str, address: str, fetch_pending: Callable[[], int]) -> NonceManager:
    """The process-wide nonce manager of `address` on the node at `rpc_url`."""
    key = (rpc_url, address.lower())
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = _MANAGERS[key] = NonceManager(fetch_pending)
        return manager


@dataclass(frozen=True)
class WaitPolicy:
    """Receipt polling: the first poll right after sending, then waits from `first_poll_s`,
    growing by `growth` to `max_poll_s`. Gives up after `timeout_s`.

    An instant-mining devnet has the receipt at the first poll ~90% of the time and within a
    few ms otherwise (measured on anvil); a 1 ms first wait, doubling, catches those without
    a 5 ms sleep per transaction, and reaches `max_poll_s` within ~7 polls on a real chain.
    """

    first_poll_s: float = 0.001
    growth: float = 2.0
    max_poll_s: float = 0.1
    timeout_s: float = 120.0


class TransactionSender:
    """Builds, signs (locally), sends and waits for transactions of one account."""

    def __init__(
        self,
        transport: Transport,
        chain_id: int,
        account: LocalAccount,
        decoder: RevertDecoder,
        wait: WaitPolicy | None = None,
    ) -> None:
        self.transport = transport
        self.chain_id = chain_id
        self.account = account
        self.decoder = decoder
        self.wait_policy = wait or WaitPolicy()
        self.nonces = nonce_manager(transport.rpc_url, account.address, self._pending_nonce)
        self._fee_lock = threading.Lock()
        self._fees: tuple[float, int, int] | None = None  # (fetched at, maxFee, priority)

    def _pending_nonce(self) -> int:
        return int(self.transport.request("eth_getTransactionCount", [self.account.address, "pending"]), 16)

    def fees(self, refresh: bool = False) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas), cached for a second: one block read, not one per tx."""
        with self._fee_lock:
            now = time.monotonic()
            if refresh or self._fees is None or now - self._fees[0] > FEE_CACHE_S:
                block = self.transport.request("eth_getBlockByNumber", ["latest", False])
                base = int(block.get("baseFeePerGas") or "0x0", 16)
                try:
                    tip = int(self.transport.request("eth_maxPriorityFeePerGas", []), 16)
                except RPCError:
                    tip = DEFAULT_PRIORITY_FEE
                self._fees = (now, 2 * base + tip, tip)
            return self._fees[1], self._fees[2]

    def estimate(self, call: dict[str, Any], action: str) -> int:
        """Gas for `call`; a revert raises its decoded `ContractRevertError` and nothing is sent."""
        return self._gas(lambda: self.transport.request("eth_estimateGas", [call]), action)

    def _gas(self, read: Callable[[], Any], action: str) -> int:
        try:
            return int(read(), 16)
        except RPCError as error:
            data = revert_data_of(error.error)
            if data is not None:
                raise self.decoder.decode(data, action) from None
            raise

    def _estimate_and_pending(self, call: dict[str, Any], action: str) -> tuple[int, int | None]:
        """`estimate` and the account's pending nonce in one round trip (None when not read).

        The nonce is a hint for `NonceManager.peek`: if another sender of this account gets in
        between, the node answers "nonce too low" and the nonce is read again, as before.
        """
        answers = self.transport.batch(
            [("eth_estimateGas", [call]), ("eth_getTransactionCount", [self.account.address, "pending"])]
        )
        if answers is None:
            return self.estimate(call, action), None
        gas = self._gas(lambda: self.transport.result("eth_estimateGas", answers[0]), action)
        if "error" in answers[1]:
            return gas, None
        return gas, int(answers[1]["result"], 16)

    def transact(self, to: str | None, data: str, action: str, gas: int | None = None) -> dict[str, Any]:
        """Send a transaction calling `to` with `data` (or creating a contract when `to` is None).

        Returns the raw receipt of a successful transaction. A revert raises before sending
        (from the gas estimate) or, if state changed in between, after mining (decoded by
        replaying the call on the parent block).
        """
        call: dict[str, Any] = {"from": self.account.address, "data": data}
        if to is not None:
            call["to"] = to_checksum_address(to)
        pending = None
        if gas is None:
            estimated, pending = self._estimate_and_pending(call, action)
            gas = estimated * GAS_MARGIN_NUM // GAS_MARGIN_DEN
        tx_hash = self._sign_and_send(call, gas, action, pending)
        try:
            receipt = self.wait(tx_hash)
        finally:
            self.nonces.settled()
        if int(receipt["status"], 16) != 1:
            raise self._failure(call, receipt, action)
        return receipt

    def _sign_and_send(self, call: dict[str, Any], gas: int, action: str, pending: int | None = None) -> str:
        max_fee, tip = self.fees()
        refreshed_fees = False
        with self.nonces.lock:
            for _ in range(4):
                nonce = self.nonces.peek(pending)
                pending = None  # a retry reads the node again
                tx: dict[str, Any] = {
                    "type": 2,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                    "value": 0,
                    "data": call["data"],
                }
                if "to" in call:
                    tx["to"] = call["to"]
                signed = self.account.sign_transaction(tx)
                tx_hash = "0x" + bytes(signed.hash).hex()
                raw = "0x" + bytes(signed.raw_transaction).hex()
                try:
                    self.transport.request("eth_sendRawTransaction", [raw])
                except UnreachableError:
                    # It may or may not have landed: the node decides the next nonce.
                    self.nonces.resync()
                    raise
                except RPCError as error:
                    message = str(error.error.get("message", "")).lower()
                    if "already known" in message or "known transaction" in message:
                        # An earlier transport retry delivered these very bytes.
                        self.nonces.advance()
                        return tx_hash
                    if "nonce too low" in message or "nonce has already been used" in message:
                        if self._known(tx_hash):
                            self.nonces.advance()
                            return tx_hash
                        log.debug("nonce %d of %s was used elsewhere; resyncing", nonce, self.account.address)
                        self.nonces.resync()
                        continue
                    if "base fee" in message and not refreshed_fees:
                        max_fee, tip = self.fees(refresh=True)
                        refreshed_fees = True
                        continue
                    self.nonces.resync()
                    data = revert_data_of(error.error)
                    if data is not None:
                        raise self.decoder.decode(data, action) from None
                    raise
                self.nonces.advance()
                log.debug("sent %s nonce %d: %s", action, nonce, tx_hash)
                return tx_hash
        raise RPCError(
            f"{action}: the node kept rejecting nonces for {self.account.address}; another process is "
            "sending from this account at a high rate",
            method="eth_sendRawTransaction",
            url=self.transport.rpc_url,
        )

    def _known(self, tx_hash: str) -> bool:
        return self.transport.request("eth_getTransactionByHash", [tx_hash]) is not None

    def wait(self, tx_hash: str) -> dict[str, Any]:
        """Poll for the receipt of `tx_hash`: at once, then with growing waits (`WaitPolicy`)."""
        policy = self.wait_policy
        deadline = time.monotonic() + policy.timeout_s
        delay = policy.first_poll_s
        while True:
            receipt = self.transport.request("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None and receipt.get("blockNumber"):
                return dict(receipt)
            if time.monotonic() > deadline:
                raise TransactionTimeoutError(
                    f"no receipt for transaction {tx_hash} after {policy.timeout_s:.0f} s at "
                    f"{self.transport.rpc_url}; it may still be mined later"
                )
            time.sleep(delay)
            delay = min(delay * policy.growth, policy.max_poll_s)

    def _failure(self, call: dict[str, Any], receipt: dict[str, Any], action: str) -> Exception:
        """Why a mined transaction failed: replay it on the state it started from."""
        block = int(receipt["blockNumber"], 16)
        try:
            self.transport.request("eth_call", [call, hex(max(block - 1, 0))])
        except RPCError as error:
            data = revert_data_of(error.error)
            if data is not None:
                decoded: ContractRevertError = self.decoder.decode(data, action)
                return decoded
        return TransactionFailedError(
            f"{action}: transaction {receipt['transactionHash']} failed in block {block} "
            "and replaying it gives no revert reason (out of gas, or state changed within the block)"
        )
