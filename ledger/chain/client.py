"""`LedgerClient`: the typed facade over the three contracts.

Reads are `eth_call`s encoded here and sent straight to the provider (one round trip
each; the chain id is read once at connect). Writes go through `TransactionSender`:
estimate (a revert raises its specific `ContractRevertError` and nothing is sent) ->
sign locally -> send -> wait for the receipt with a short poll.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from ledger.chain.abi import ARTIFACTS_DIR, CONTRACT_NAMES, ContractABI, load_artifact
from ledger.chain.revert import RevertDecoder, revert_data_of
from ledger.chain.sender import TransactionSender, WaitPolicy
from ledger.chain.transport import TRANSIENT_ERRORS, RetryPolicy, Transport, make_provider, make_web3
from ledger.chain.types import (
    AuthorizationStatus,
    BlockRef,
    DatasetState,
    DecodedEvent,
    GrantRecord,
    GrantTerms,
    JobRecord,
    Receipt,
)
from ledger.deploy import Deployment, load_deployment, verify_deployment
from ledger.errors import (
    ConfigurationError,
    ContractRevertError,
    DeploymentMismatchError,
    InvalidArgumentError,
    RPCError,
    SignedGrantFormatError,
)
from ledger.participants import DEFAULT_BATCH, batches, participants_hash
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.signed_grants import GrantAuthority, SignedGrant, grant_authority, grant_from_signed

log = logging.getLogger(__name__)

BlockId = int | str
DatasetRef = int | bytes


def dataset_id_of(dataset: DatasetRef) -> int:
    """A dataset id from an int or a 32-byte content root."""
    if isinstance(dataset, bytes | bytearray):
        if len(dataset) != 32:
            raise InvalidArgumentError(f"a content root is 32 bytes, got {len(dataset)}")
        return int.from_bytes(dataset, "big")
    if not 0 <= dataset < 2**256:
        raise InvalidArgumentError(f"dataset id {dataset} is not a uint256")
    return int(dataset)


def _bytes32(value: bytes | str, what: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise InvalidArgumentError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


@lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    """`to_checksum_address`, remembered: two keccak256 per call dominate a batched check's CPU."""
    return str(to_checksum_address(address))


def _grant_record(raw: Sequence[Any]) -> GrantRecord:
    not_before, expires_at, epoch, revoked, revoked_once, revoked_epoch, *encoded_terms = raw
    terms = GrantTerms.from_chain(*encoded_terms)
    return GrantRecord(
        int(not_before),
        int(expires_at),
        int(epoch),
        bool(revoked),
        bool(revoked_once),
        int(revoked_epoch),
        terms.epsilon,
        terms.delta,
        terms.min_participants,
        terms.max_rounds,
    )


def _block_param(block: BlockId) -> str:
    return hex(block) if isinstance(block, int) else block


@dataclass(frozen=True)
class GrantSnapshot:
    """A grant and its authorisation status read at one block, and the chain's head at that moment."""

    block: BlockRef
    head: int
    status: AuthorizationStatus
    grant: GrantRecord


def resolve_rpc_url(settings: Settings) -> str:
    """`settings.rpc_url`, else the running embedded devnet's URL, else its configured port."""
    if settings.rpc_url:
        return settings.rpc_url
    from ledger.devnet import Devnet

    return Devnet(settings).rpc_url() or f"http://127.0.0.1:{settings.devnet_port}"


def _job_record(raw: Sequence[Any]) -> JobRecord:
    coordinator, last_round, purpose, last_digest, datasets_hash, spec_digest = raw
    return JobRecord(
        to_checksum_address(coordinator),
        int(last_round),
        bytes(purpose),
        bytes(last_digest),
        bytes(datasets_hash),
        bytes(spec_digest),
    )


class LedgerClient:
    """Typed reads and writes of DatasetRegistry, UsageGrants and TrainingLedger."""

    def __init__(
        self,
        transport: Transport,
        chain_id: int,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        wait: WaitPolicy | None = None,
        artifacts_dir: Any = ARTIFACTS_DIR,
    ) -> None:
        if deployment.chain_id != chain_id:
            raise ConfigurationError(
                f"deployment is for chain {deployment.chain_id} but {transport.rpc_url} is chain {chain_id}"
            )
        self.transport = transport
        self.rpc_url = transport.rpc_url
        self.chain_id = chain_id
        self.deployment = deployment
        self.account = account
        self.address: str | None = None if account is None else str(account.address)
        self.w3: Web3 = make_web3(transport.provider)
        self.abis = {
            name: ContractABI(name, load_artifact(name, artifacts_dir).abi) for name in CONTRACT_NAMES
        }
        self.decoder = RevertDecoder(self.abis.values())
        self._by_address = {deployment.address(n).lower(): self.abis[n] for n in CONTRACT_NAMES}
        self._wait = wait
        self._sender = (
            None if account is None else TransactionSender(transport, chain_id, account, self.decoder, wait)
        )

    # ----------------------------------------------------------------- construction

    @classmethod
    def connect(
        cls,
        settings: Settings,
        account: LocalAccount | None = None,
        deployment: Deployment | None = None,
        *,
        rpc_url: str | None = None,
        retry: RetryPolicy | None = None,
        wait: WaitPolicy | None = None,
    ) -> LedgerClient:
        """Connect to the node of `settings` (or `rpc_url`) and the deployment for its chain id.

        Without `deployment` the manifest `$SOV_HOME/deployments/<chain_id>.json` is loaded and
        checked against the node's code.
        """
        url = rpc_url or resolve_rpc_url(settings)
        transport = Transport(make_provider(url), url, retry)
        chain_id = int(transport.request("eth_chainId", []), 16)
        if deployment is None:
            deployment = load_deployment(settings, transport, chain_id)
        return cls(transport, chain_id, deployment, account, wait=wait)

    @classmethod
    def from_url(
        cls,
        rpc_url: str,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        retry: RetryPolicy | None = None,
        wait: WaitPolicy | None = None,
        verify: bool = False,
    ) -> LedgerClient:
        """Connect to `rpc_url` with a known deployment (no settings, no manifest file)."""
        transport = Transport(make_provider(rpc_url), rpc_url, retry)
        chain_id = int(transport.request("eth_chainId", []), 16)
        if verify:
            verify_deployment(transport, deployment, chain_id)
        return cls(transport, chain_id, deployment, account, wait=wait)

    def with_account(self, account: LocalAccount) -> LedgerClient:
        """A client for the same node and deployment that signs with `account`."""
        return LedgerClient(self.transport, self.chain_id, self.deployment, account, wait=self._wait)

    # ----------------------------------------------------------------- plumbing

    def _call(
        self, contract: str, fn: str, args: Sequence[Any], block: BlockId = "latest"
    ) -> tuple[Any, ...]:
        abi = self.abis[contract].function(fn, len(args))
        call = {"to": self.deployment.address(contract), "data": abi.encode_call(args)}
        try:
            result = self.transport.request("eth_call", [call, _block_param(block)])
        except RPCError as error:
            data = revert_data_of(error.error)
            if data is not None:
                raise self.decoder.decode(data, f"{contract}.{fn}") from None
            raise
        output = bytes.fromhex(str(result)[2:])
        if not output and abi.output_types:
            raise DeploymentMismatchError(
                f"{contract}.{fn} returned no data at block {block}: there is no contract "
                f"code at {call['to']} there (a block before its deployment, or another chain's addresses)"
            )
        return abi.decode_output(output)

    def _batch(self, requests: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """The raw responses (`result` or `error`) of one JSON-RPC batch, in request order.

        One HTTP round trip instead of one per request. Only the keep-alive HTTP provider can send
        a batch body here; for any other provider, a node that does not answer batches, or a
        transport failure, the requests go one by one through `Transport` (its retry policy and
        its `UnreachableError`), so callers see the same errors either way.
        """
        post = getattr(self.transport.provider, "post", None)
        if post is not None:
            body = [
                {"jsonrpc": "2.0", "method": m, "params": p, "id": i} for i, (m, p) in enumerate(requests)
            ]
            if log.isEnabledFor(logging.DEBUG):
                log.debug("rpc batch %s", [m for m, _ in requests])
            raw: Any = None
            try:
                raw = json.loads(post(json.dumps(body).encode()))
            except TRANSIENT_ERRORS:
                pass
            except ValueError:  # not JSON: a proxy's error page, say
                pass
            if isinstance(raw, list):
                # Batch answers may come in any order; the ids put them back.
                by_id: dict[Any, dict[str, Any]] = {
                    item.get("id"): item for item in raw if isinstance(item, dict)
                }
                found = [by_id[i] for i in range(len(requests)) if i in by_id]
                if len(found) == len(requests) and all("result" in a or "error" in a for a in found):
                    return found
        answers: list[dict[str, Any]] = []
        for method, params in requests:
            try:
                answers.append({"result": self.transport.request(method, params)})
            except RPCError as error:
                if not error.error:
                    raise
                answers.append({"error": error.error})
        return answers

    def _decode_answer(self, contract: str, fn: str, nargs: int, answer: dict[str, Any]) -> tuple[Any, ...]:
        """Decode one batched `eth_call` answer like `_call` does (a revert raises its error)."""
        if "error" in answer:
            error = dict(answer["error"])
            data = revert_data_of(error)
            if data is not None:
                raise self.decoder.decode(data, f"{contract}.{fn}")
            raise RPCError(
                f"eth_call failed at {self.rpc_url}: {error.get('message', '')} (code {error.get('code')})",
                method="eth_call",
                code=error.get("code") if isinstance(error.get("code"), int) else None,
                url=self.rpc_url,
                error=error,
            )
        return self.abis[contract].function(fn, nargs).decode_output(bytes.fromhex(str(answer["result"])[2:]))

    def _transact(self, contract: str, fn: str, args: Sequence[Any], action: str) -> Receipt:
        if self._sender is None:
            raise ConfigurationError(f"{action} needs a signing account; connect with account=...")
        abi = self.abis[contract].function(fn, len(args))
        raw = self._sender.transact(self.deployment.address(contract), abi.encode_call(args), action)
        return self._receipt(raw)

    def _receipt(self, raw: dict[str, Any]) -> Receipt:
        return Receipt(
            tx_hash=str(raw["transactionHash"]),
            block_number=int(raw["blockNumber"], 16),
            block_hash=str(raw["blockHash"]),
            gas_used=int(raw["gasUsed"], 16),
            events=[e for e in (self.decode_log(log_) for log_ in raw.get("logs", [])) if e is not None],
        )

    def decode_log(self, log_: dict[str, Any]) -> DecodedEvent | None:
        """Decode a raw JSON-RPC log of one of the three contracts (None for other logs)."""
        contract = self._by_address.get(str(log_["address"]).lower())
        topics = [bytes.fromhex(str(t)[2:]) for t in log_.get("topics", [])]
        if contract is None or not topics:
            return None
        event = contract.events.get(topics[0])
        if event is None:
            return None
        return DecodedEvent(
            contract=contract.name,
            name=event.name,
            args=event.decode_log(topics, bytes.fromhex(str(log_["data"])[2:])),
            address=to_checksum_address(log_["address"]),
            block_number=int(log_["blockNumber"], 16),
            block_hash=str(log_["blockHash"]),
            tx_hash=str(log_["transactionHash"]),
            log_index=int(log_["logIndex"], 16),
        )

    # ----------------------------------------------------------------- reads

    def call_many(
        self, calls: Sequence[tuple[str, str, Sequence[Any]]], *, block: BlockId = "latest"
    ) -> list[tuple[Any, ...]]:
        """Several contract reads `(contract, function, args)` in one JSON-RPC batch, at one block.

        One round trip instead of one per read; a read that reverts raises its decoded error.
        """
        at = _block_param(block)
        answers = self._batch(
            [
                (
                    "eth_call",
                    [
                        {
                            "to": self.deployment.address(contract),
                            "data": self.abis[contract].function(fn, len(args)).encode_call(list(args)),
                        },
                        at,
                    ],
                )
                for contract, fn, args in calls
            ]
        )
        return [
            self._decode_answer(contract, fn, len(args), answer)
            for (contract, fn, args), answer in zip(calls, answers, strict=True)
        ]

    def read_batch(
        self,
        calls: Sequence[tuple[str, str, Sequence[Any]]],
        raw_calls: Sequence[tuple[str, str]] = (),
        *,
        block: BlockId = "latest",
    ) -> tuple[list[tuple[Any, ...]], list[bytes | None]]:
        """`call_many` plus raw `eth_call`s `(to, 0x calldata)` to other contracts, in one batch.

        For reads of contracts outside the deployment (a data owner's EIP-1271 wallet) in the
        same round trip and block as the ledger's. A raw call that reverts answers None, an
        account without code answers empty bytes.
        """
        at = _block_param(block)
        requests = [
            (
                "eth_call",
                [
                    {
                        "to": self.deployment.address(contract),
                        "data": self.abis[contract].function(fn, len(args)).encode_call(list(args)),
                    },
                    at,
                ],
            )
            for contract, fn, args in calls
        ] + [("eth_call", [{"to": to_checksum_address(to), "data": data}, at]) for to, data in raw_calls]
        answers = self._batch(requests)
        decoded = [
            self._decode_answer(contract, fn, len(args), answer)
            for (contract, fn, args), answer in zip(calls, answers[: len(calls)], strict=True)
        ]
        raw: list[bytes | None] = []
        for (to, _), answer in zip(raw_calls, answers[len(calls) :], strict=True):
            if "error" not in answer:
                raw.append(bytes.fromhex(str(answer["result"])[2:]))
                continue
            error = dict(answer["error"])
            if revert_data_of(error) is None:
                raise RPCError(
                    f"eth_call to {to} failed at {self.rpc_url}: {error.get('message', '')} "
                    f"(code {error.get('code')})",
                    method="eth_call",
                    code=error.get("code") if isinstance(error.get("code"), int) else None,
                    url=self.rpc_url,
                    error=error,
                )
            raw.append(None)
        return decoded, raw

    def authorization_statuses(
        self,
        dataset_ids: Sequence[DatasetRef],
        grantee: str,
        purpose: bytes | str,
        *,
        block: BlockId = "latest",
    ) -> list[AuthorizationStatus]:
        """`authorization_status` of many datasets for one grantee and purpose, in one round trip."""
        who, what = to_checksum_address(grantee), purpose_id(purpose)
        calls = [("UsageGrants", "authorizationStatus", [dataset_id_of(d), who, what]) for d in dataset_ids]
        return [AuthorizationStatus(int(status)) for (status,) in self.call_many(calls, block=block)]

    def dataset_states(
        self, dataset_ids: Sequence[DatasetRef], *, block: BlockId = "latest"
    ) -> list[DatasetState]:
        """`dataset_state` of many datasets, in one round trip."""
        calls = [("DatasetRegistry", "datasetState", [dataset_id_of(d)]) for d in dataset_ids]
        return [
            DatasetState(to_checksum_address(owner), int(epoch), bool(retired))
            for owner, epoch, retired in self.call_many(calls, block=block)
        ]

    def job_and_status(
        self,
        job_id: int,
        dataset_id: DatasetRef,
        coordinator: str,
        purpose: bytes,
        *,
        block: BlockId = "latest",
    ) -> tuple[JobRecord, AuthorizationStatus]:
        """A job and one dataset's authorisation for its known coordinator and purpose, in one trip."""
        job_raw, (status,) = self.call_many(
            [
                ("TrainingLedger", "getJob", [job_id]),
                (
                    "UsageGrants",
                    "authorizationStatus",
                    [dataset_id_of(dataset_id), to_checksum_address(coordinator), purpose],
                ),
            ],
            block=block,
        )
        return _job_record(job_raw[0]), AuthorizationStatus(int(status))

    def dataset_state(self, dataset_id: DatasetRef, *, block: BlockId = "latest") -> DatasetState:
        """Deed holder, transfer epoch and retirement of a dataset (zero owner when unknown)."""
        owner, epoch, retired = self._call(
            "DatasetRegistry", "datasetState", [dataset_id_of(dataset_id)], block
        )
        return DatasetState(to_checksum_address(owner), int(epoch), bool(retired))

    def authorization_status(
        self, dataset_id: DatasetRef, grantee: str, purpose: bytes | str, *, block: BlockId = "latest"
    ) -> AuthorizationStatus:
        """Why `grantee` is or is not authorised to use the dataset for `purpose` (at `block`)."""
        (status,) = self._call(
            "UsageGrants",
            "authorizationStatus",
            [dataset_id_of(dataset_id), to_checksum_address(grantee), purpose_id(purpose)],
            block,
        )
        return AuthorizationStatus(int(status))

    def is_authorized(
        self, dataset_id: DatasetRef, grantee: str, purpose: bytes | str, *, block: BlockId = "latest"
    ) -> bool:
        """The one check every node makes before training."""
        (ok,) = self._call(
            "UsageGrants",
            "isAuthorized",
            [dataset_id_of(dataset_id), to_checksum_address(grantee), purpose_id(purpose)],
            block,
        )
        return bool(ok)

    def require_authorized(
        self,
        dataset_ids: Sequence[DatasetRef],
        grantee: str,
        purpose: bytes | str,
        *,
        block: BlockId = "latest",
    ) -> None:
        """Raise the specific `NotAuthorizedError` of the first dataset that is not authorised."""
        self._call(
            "UsageGrants",
            "requireAuthorized",
            [[dataset_id_of(d) for d in dataset_ids], to_checksum_address(grantee), purpose_id(purpose)],
            block,
        )

    def require_round_authorized(
        self,
        participants: Sequence[DatasetRef],
        grantee: str,
        purpose: bytes | str,
        round_number: int,
        *,
        block: BlockId = "latest",
    ) -> None:
        """What `commitRound` checks of the grants: every participant authorised, and every
        participant's terms allow `len(participants)` participants in round `round_number`.

        Raises the specific `NotAuthorizedError` (`TooFewParticipantsError`,
        `RoundLimitExceededError` for the terms) of the first participant that fails.
        """
        self._call(
            "UsageGrants",
            "requireRoundAuthorized",
            [
                [dataset_id_of(d) for d in participants],
                to_checksum_address(grantee),
                purpose_id(purpose),
                int(round_number),
            ],
            block,
        )

    def get_grant(
        self, dataset_id: DatasetRef, grantee: str, purpose: bytes | str, *, block: BlockId = "latest"
    ) -> GrantRecord:
        """The stored grant (all zero when none), with its terms (`GrantRecord.terms`)."""
        (raw,) = self._call(
            "UsageGrants",
            "getGrant",
            [dataset_id_of(dataset_id), to_checksum_address(grantee), purpose_id(purpose)],
            block,
        )
        return _grant_record(raw)

    def grant_snapshot(
        self, dataset_id: DatasetRef, grantee: str, purpose: bytes | str, *, block: int
    ) -> GrantSnapshot:
        """`authorizationStatus` and `getGrant` at block number `block`, with its header and the head.

        One batched round trip (`eth_blockNumber`, the header, both calls), so a caller that keeps
        the head it last saw answers from the latest block in one trip, and knows from `head`
        whether a newer block arrived meanwhile (then it asks again at `head`).
        """
        args = [dataset_id_of(dataset_id), _checksummed(grantee), purpose_id(purpose)]
        target = self.deployment.address("UsageGrants")
        abis = self.abis["UsageGrants"]
        at = _block_param(block)
        head, header, status, grant = self._batch(
            [
                ("eth_blockNumber", []),
                ("eth_getBlockByNumber", [at, False]),
                (
                    "eth_call",
                    [{"to": target, "data": abis.function("authorizationStatus", 3).encode_call(args)}, at],
                ),
                ("eth_call", [{"to": target, "data": abis.function("getGrant", 3).encode_call(args)}, at]),
            ]
        )
        for answer, method in ((head, "eth_blockNumber"), (header, "eth_getBlockByNumber")):
            if "error" in answer:
                raise RPCError(
                    f"{method} failed at {self.rpc_url}: {answer['error'].get('message', '')}",
                    method=method,
                    url=self.rpc_url,
                    error=dict(answer["error"]),
                )
        raw = header["result"]
        if raw is None:
            if int(head["result"], 16) < block:
                # The chain is shorter than the caller thought (a restarted or reverted devnet).
                return self.grant_snapshot(dataset_id, grantee, purpose, block=int(head["result"], 16))
            raise LookupError(f"block {block} does not exist at {self.rpc_url}")
        (status_value,) = self._decode_answer("UsageGrants", "authorizationStatus", 3, status)
        (grant_raw,) = self._decode_answer("UsageGrants", "getGrant", 3, grant)
        return GrantSnapshot(
            block=BlockRef(int(raw["number"], 16), str(raw["hash"]), int(raw["timestamp"], 16)),
            head=int(head["result"], 16),
            status=AuthorizationStatus(int(status_value)),
            grant=_grant_record(grant_raw),
        )

    def nonces(self, owner: str, *, block: BlockId = "latest") -> int:
        """The next nonce a signed grant of `owner` must carry."""
        (value,) = self._call("UsageGrants", "nonces", [to_checksum_address(owner)], block)
        return int(value)

    def domain_separator(self) -> bytes:
        """UsageGrants' EIP-712 domain separator."""
        (value,) = self._call("UsageGrants", "DOMAIN_SEPARATOR", [])
        return bytes(value)

    def get_job(self, job_id: int, *, block: BlockId = "latest") -> JobRecord:
        """A job as stored (raises `UnknownJobError` when there is none)."""
        (raw,) = self._call("TrainingLedger", "getJob", [job_id], block)
        return _job_record(raw)

    def job_count(self, *, block: BlockId = "latest") -> int:
        """How many jobs exist (ids run from 1)."""
        (count,) = self._call("TrainingLedger", "jobCount", [], block)
        return int(count)

    def latest_block(self) -> BlockRef:
        """Number, hash and timestamp of the latest block."""
        return self.block("latest")

    def block(self, block: BlockId) -> BlockRef:
        """Number, hash and timestamp of a block."""
        raw = self.transport.request("eth_getBlockByNumber", [_block_param(block), False])
        if raw is None:
            raise LookupError(f"block {block} does not exist at {self.rpc_url}")
        return BlockRef(int(raw["number"], 16), str(raw["hash"]), int(raw["timestamp"], 16))

    def get_logs(self, from_block: int, to_block: BlockId = "latest") -> list[DecodedEvent]:
        """Decoded events of the three contracts in a block range (for the event index)."""
        raw = self.transport.request(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(from_block),
                    "toBlock": _block_param(to_block),
                    "address": [self.deployment.address(n) for n in CONTRACT_NAMES],
                }
            ],
        )
        return [e for e in (self.decode_log(item) for item in raw) if e is not None]

    # ----------------------------------------------------------------- writes

    def register_dataset(self, content_root: bytes, parent_id: int = 0, uri: str = "") -> tuple[int, Receipt]:
        """Register the dataset whose content root is `content_root`; returns (datasetId, receipt)."""
        root = _bytes32(content_root, "content root")
        receipt = self._transact(
            "DatasetRegistry", "register", [root, dataset_id_of(parent_id), uri], "register dataset"
        )
        return int.from_bytes(root, "big"), receipt

    def retire_dataset(self, dataset_id: DatasetRef) -> Receipt:
        """Withdraw consent: no grant on the dataset authorises from this block on (irreversible)."""
        return self._transact("DatasetRegistry", "retire", [dataset_id_of(dataset_id)], "retire dataset")

    def transfer_dataset(self, dataset_id: DatasetRef, to: str) -> Receipt:
        """Hand the dataset's deed to `to` (grants of the previous owner stop authorising)."""
        did = dataset_id_of(dataset_id)
        owner = self.dataset_state(did).owner
        return self._transact(
            "DatasetRegistry", "safeTransferFrom", [owner, to_checksum_address(to), did], "transfer dataset"
        )

    def set_operator(self, operator: str, approved: bool) -> Receipt:
        """Let `operator` grant and revoke on all of this account's datasets (or stop letting it)."""
        return self._transact(
            "DatasetRegistry", "setApprovalForAll", [to_checksum_address(operator), approved], "set operator"
        )

    def issue_grant(
        self,
        dataset_id: DatasetRef,
        grantee: str,
        purpose: bytes | str,
        not_before: int,
        expires_at: int,
        terms: GrantTerms | None = None,
    ) -> Receipt:
        """Grant `grantee` use of the dataset for `purpose` from `not_before` to `expires_at` (inclusive).

        With `terms` (a DP budget, minimum participants, maximum rounds) the grant carries them;
        without, or with empty terms, it has none. Re-issuing replaces the previous terms.
        """
        args: list[Any] = [
            dataset_id_of(dataset_id),
            to_checksum_address(grantee),
            purpose_id(purpose),
            not_before,
            expires_at,
        ]
        if terms is not None and not terms.is_empty:
            args.append(terms.to_chain())
        return self._transact("UsageGrants", "issueGrant", args, "issue grant")

    def grant_authority(self, grant: SignedGrant, *, block: BlockId = "latest") -> GrantAuthority:
        """Who authorises a signed grant now: the deed's holder, whether it is a contract (EIP-1271)
        or an EOA (then also the address its signature recovers to), and the bytes to submit."""
        owner = self.dataset_state(grant.dataset_id, block=block).owner
        code = str(self.transport.request("eth_getCode", [owner, _block_param(block)]))
        return grant_authority(grant, owner, code not in ("0x", "0x0", ""))

    def redeem_signed_grant(self, signed: dict[str, Any] | SignedGrant) -> tuple[GrantAuthority, Receipt]:
        """Submit a grant the owner signed off-chain; returns who authorised it and the receipt.

        `signed` is the eth_signTypedData_v4 JSON plus `signature` (any integer spelling a wallet
        uses), or an already parsed grant. The domain must be this chain's and this deployment's
        UsageGrants; the signature is sent as the owner's kind needs (see `grant_authority`).
        """
        grant = signed if isinstance(signed, SignedGrant) else grant_from_signed(signed)
        if grant.chain_id != self.chain_id:
            raise SignedGrantFormatError(
                f"the grant was signed for chain {grant.chain_id}, this node is chain {self.chain_id}"
            )
        if grant.verifying_contract.lower() != self.deployment.address("UsageGrants").lower():
            raise SignedGrantFormatError(
                f"the grant was signed for UsageGrants at {grant.verifying_contract}, "
                f"this deployment's is {self.deployment.address('UsageGrants')}"
            )
        authority = self.grant_authority(grant)
        receipt = self._transact(
            "UsageGrants",
            "issueGrantBySig",
            [
                grant.dataset_id,
                grant.grantee,
                grant.purpose,
                grant.not_before,
                grant.expires_at,
                grant.terms.to_chain(),
                grant.nonce,
                grant.deadline,
                authority.signature,
            ],
            "redeem signed grant",
        )
        return authority, receipt

    def issue_grant_by_sig(self, signed: dict[str, Any] | SignedGrant) -> Receipt:
        """Submit a grant the owner signed off-chain (see `redeem_signed_grant`); returns the receipt."""
        return self.redeem_signed_grant(signed)[1]

    def revoke_grant(self, dataset_id: DatasetRef, grantee: str, purpose: bytes | str) -> Receipt:
        """Revoke a grant (owner or operator)."""
        return self._transact(
            "UsageGrants",
            "revokeGrant",
            [dataset_id_of(dataset_id), to_checksum_address(grantee), purpose_id(purpose)],
            "revoke grant",
        )

    def invalidate_nonces(self, up_to: int | None = None) -> tuple[int, Receipt]:
        """Cancel this account's unredeemed signed grants with a nonce up to `up_to`.

        Without `up_to`, the current nonce: every grant signed since the last redemption (they
        all carry it) is cancelled. Returns (the next nonce, receipt); a value below the current
        nonce raises `NonceNotAheadError` before anything is sent.
        """
        if self.address is None:
            raise ConfigurationError("cancel signatures needs a signing account; connect with account=...")
        target = self.nonces(self.address) if up_to is None else int(up_to)
        if not 0 <= target < 2**256:
            raise InvalidArgumentError(f"nonce {target} is not a uint256")
        receipt = self._transact("UsageGrants", "invalidateNonces", [target], "cancel signatures")
        return int(receipt.event("NoncesInvalidated").args["newNonce"]), receipt

    def renounce_grant(self, dataset_id: DatasetRef, purpose: bytes | str) -> Receipt:
        """The grantee (this account) gives up its grant."""
        return self._transact(
            "UsageGrants", "renounceGrant", [dataset_id_of(dataset_id), purpose_id(purpose)], "renounce grant"
        )

    def create_job(
        self,
        purpose: bytes | str,
        datasets: Sequence[DatasetRef],
        initial_model_digest: bytes,
        spec_digest: bytes,
    ) -> tuple[int, Receipt]:
        """Create a training job coordinated by this account; returns (jobId, receipt)."""
        receipt = self._transact(
            "TrainingLedger",
            "createJob",
            [
                purpose_id(purpose),
                [dataset_id_of(d) for d in datasets],
                _bytes32(initial_model_digest, "initial model digest"),
                _bytes32(spec_digest, "spec digest"),
            ],
            "create job",
        )
        return int(receipt.event("JobCreated").args["jobId"]), receipt

    def create_open_job(
        self, purpose: bytes | str, initial_model_digest: bytes, spec_digest: bytes
    ) -> tuple[int, Receipt]:
        """Create an open job (no dataset list: any granted dataset may take part, in large rounds)."""
        receipt = self._transact(
            "TrainingLedger",
            "createOpenJob",
            [
                purpose_id(purpose),
                _bytes32(initial_model_digest, "initial model digest"),
                _bytes32(spec_digest, "spec digest"),
            ],
            "create open job",
        )
        return int(receipt.event("JobCreated").args["jobId"]), receipt

    def begin_large_round(self, job_id: int, round_number: int, parent_digest: bytes) -> Receipt:
        """Open large round `round_number` of an open job on the job's last model."""
        return self._transact(
            "TrainingLedger",
            "beginLargeRound",
            [job_id, round_number, _bytes32(parent_digest, "parent digest")],
            "begin large round",
        )

    def add_round_participants(
        self, job_id: int, round_number: int, participants: Sequence[DatasetRef]
    ) -> Receipt:
        """Add one batch of participants (ascending, after every id added before) to the open large round."""
        return self._transact(
            "TrainingLedger",
            "addRoundParticipants",
            [job_id, round_number, [dataset_id_of(d) for d in participants]],
            "add round participants",
        )

    def finalize_large_round(
        self,
        job_id: int,
        round_number: int,
        model_digest: bytes,
        manifest_cid: str,
        participant_count: int,
        participants_hash: bytes,
        attestations_root: bytes,
    ) -> Receipt:
        """Commit the open large round: the count and hash chain must be those its batches built."""
        return self._transact(
            "TrainingLedger",
            "finalizeLargeRound",
            [
                job_id,
                round_number,
                _bytes32(model_digest, "model digest"),
                manifest_cid,
                participant_count,
                _bytes32(participants_hash, "participants hash"),
                _bytes32(attestations_root, "attestations root"),
            ],
            "finalize large round",
        )

    def abort_large_round(self, job_id: int, round_number: int) -> Receipt:
        """Drop the job's open large round and its batches."""
        return self._transact(
            "TrainingLedger", "abortLargeRound", [job_id, round_number], "abort large round"
        )

    def open_large_round(self, job_id: int, *, block: BlockId = "latest") -> tuple[int, int, bytes]:
        """The job's open large round as (round, participant count, participants hash); round 0: none."""
        (raw,) = self._call("TrainingLedger", "getLargeRound", [job_id], block=block)
        return int(raw[0]), int(raw[1]), bytes(raw[3])

    def commit_large_round(
        self,
        job_id: int,
        round_number: int,
        parent_digest: bytes,
        model_digest: bytes,
        manifest_cid: str,
        participants: Sequence[DatasetRef],
        attestations_root: bytes,
        *,
        batch_size: int = DEFAULT_BATCH,
    ) -> Receipt:
        """Commit a round of an open job: begin, one transaction per batch, finalize.

        A round left open by an earlier attempt (a crash, or a batch the contract refused) is
        aborted first, so the participants committed are exactly `participants`. A revert of a
        batch (a grant that ended since selection) aborts the round and re-raises, with the
        contract's error naming the dataset; nothing is committed. Returns the finalize receipt.
        """
        ids = sorted(dataset_id_of(d) for d in participants)
        chain_hash = participants_hash(ids)
        open_round, _, _ = self.open_large_round(job_id)
        if open_round != 0:
            self.abort_large_round(job_id, open_round)
        self.begin_large_round(job_id, round_number, parent_digest)
        try:
            for batch in batches(ids, batch_size):
                self.add_round_participants(job_id, round_number, batch)
            return self.finalize_large_round(
                job_id, round_number, model_digest, manifest_cid, len(ids), chain_hash, attestations_root
            )
        except ContractRevertError:
            self.abort_large_round(job_id, round_number)
            raise

    def commit_round(
        self,
        job_id: int,
        round_number: int,
        parent_digest: bytes,
        model_digest: bytes,
        manifest_cid: str,
        job_datasets: Sequence[DatasetRef],
        participants: Sequence[DatasetRef],
        attestations_root: bytes,
    ) -> Receipt:
        """Commit round `round_number` of a job; `participants` are dataset ids from `job_datasets`."""
        job_ids = [dataset_id_of(d) for d in job_datasets]
        position = {d: i for i, d in enumerate(job_ids)}
        mask = 0
        for participant in participants:
            pid = dataset_id_of(participant)
            if pid not in position:
                raise InvalidArgumentError(
                    f"participant dataset 0x{pid:064x} is not one of job {job_id}'s {len(job_ids)} datasets"
                )
            mask |= 1 << position[pid]
        return self._transact(
            "TrainingLedger",
            "commitRound",
            [
                job_id,
                round_number,
                _bytes32(parent_digest, "parent digest"),
                _bytes32(model_digest, "model digest"),
                manifest_cid,
                job_ids,
                mask,
                _bytes32(attestations_root, "attestations root"),
            ],
            "commit round",
        )
