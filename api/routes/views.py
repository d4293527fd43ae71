"""Conversions from `ledger` records to the API's response models, and shared route helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.errors import ApiError
from api.routes.params import cached_parse_address
from api.schemas import (
    ROUND_PARTICIPANTS_INLINE,
    DatasetOut,
    GrantOut,
    GrantTermsOut,
    JobOut,
    ReceiptOut,
    RoundOut,
    RoundParticipantOut,
    parse_address,
    parse_uint256,
)
from ledger.purposes import describe_purpose

ZERO_ADDRESS = "0x" + "00" * 20


def hex32(value: bytes | int | str) -> str:
    """A bytes32 as 0x-hex."""
    if isinstance(value, int):
        return "0x" + value.to_bytes(32, "big").hex()
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def id_hex(value: int) -> str:
    """A uint256 id as 0x-hex (the form a content root is usually read in)."""
    return hex32(value)


def as_bytes(value: bytes | str) -> bytes:
    """bytes32 from bytes or hex."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def path_uint(value: str, what: str) -> int:
    """A uint256 path or query parameter, or 422 with the reason."""
    try:
        return parse_uint256(value, what=what)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{what}: {exc}", {"field": what}) from None


def path_address(value: str, what: str) -> str:
    """An address path or query parameter, or 422 with the reason."""
    try:
        return parse_address(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{what}: {exc}", {"field": what}) from None


def receipt_out(receipt: Any) -> ReceiptOut:
    """Where a transaction landed."""
    tx_hash = receipt.tx_hash
    tx_hex = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    if not tx_hex.startswith("0x"):
        tx_hex = "0x" + tx_hex
    return ReceiptOut(tx_hash=tx_hex, block_number=int(receipt.block_number), gas_used=int(receipt.gas_used))


def status_name(status: Any) -> str:
    """`AuthorizationStatus.NOT_YET_VALID` -> `not_yet_valid`."""
    name = getattr(status, "name", None)
    return str(name).lower() if name is not None else str(status)


def grant_out(
    client: Any,
    dataset_id: int,
    grantee: str,
    purpose: bytes,
    *,
    block_number: int | None = None,
    at_block: int | str = "latest",
) -> GrantOut:
    """The grant keyed by (dataset, grantee, purpose) as the chain holds it at `at_block`, with its status."""
    record = client.get_grant(dataset_id, grantee, purpose, block=at_block)
    status = client.authorization_status(dataset_id, grantee, purpose, block=at_block)
    return grant_view(dataset_id, grantee, purpose, record, status, block_number=block_number)


def grant_view(
    dataset_id: int,
    grantee: str,
    purpose: bytes,
    record: Any,
    status: Any,
    *,
    block_number: int | None = None,
) -> GrantOut:
    """A stored grant record and its authorisation status, already read, as the API shows them."""
    return GrantOut(
        dataset_id=str(dataset_id),
        grantee=cached_parse_address(grantee),
        purpose=describe_purpose(purpose),
        purpose_id=hex32(purpose),
        not_before=int(record.not_before),
        expires_at=int(record.expires_at),
        epoch=int(record.epoch),
        revoked=bool(record.revoked),
        status=status_name(status),
        authorized=status_name(status) == "authorized",
        block_number=block_number,
        terms=GrantTermsOut(**record.terms.as_dict()) if hasattr(record, "terms") else None,
    )


def grant_from_index(record: Any, now: int) -> GrantOut:
    """An indexed grant (latest issue and what ended it), with the status a check at `now` gives."""
    status = status_name(record.status_at(now))
    return GrantOut(
        dataset_id=str(int(record.dataset_id)),
        grantee=parse_address(str(record.grantee)),
        purpose=describe_purpose(bytes(record.purpose)),
        purpose_id=hex32(bytes(record.purpose)),
        not_before=int(record.not_before),
        expires_at=int(record.expires_at),
        epoch=int(record.epoch),
        revoked=bool(record.revoked),
        status=status,
        authorized=status == "authorized",
        block_number=int(record.issued_block),
        terms=None if record.terms is None else GrantTermsOut(**record.terms.as_dict()),
    )


def dataset_from_index(record: Any) -> DatasetOut:
    """An indexed dataset (its owner follows deed transfers)."""
    dataset_id = int(record.dataset_id)
    return DatasetOut(
        dataset_id=str(dataset_id),
        dataset_id_hex=id_hex(dataset_id),
        owner=parse_address(str(record.owner)),
        epoch=int(record.epoch),
        retired=bool(record.retired),
        parent_id=str(int(record.parent_id)),
        uri=str(record.uri),
        registered_block=int(record.block_number),
    )


def round_out(record: Any, large: Any | None = None, listed: Sequence[Any] = ()) -> RoundOut:
    """An indexed `RoundCommitted`; for a large round with its `LargeRoundCommitted` (`large`) and
    the first participants the index holds from its batches (`listed`, ascending)."""
    if large is None:
        participants = [str(int(p)) for p in record.participants]
        count, digest = len(participants), None
    else:
        participants = [str(int(p.dataset_id)) for p in listed[:ROUND_PARTICIPANTS_INLINE]]
        count, digest = int(large.participant_count), hex32(large.participants_hash)
    return RoundOut(
        job_id=str(record.job_id),
        round=int(record.round),
        parent_digest=hex32(record.parent_digest),
        model_digest=hex32(record.model_digest),
        manifest_cid=str(record.manifest_cid),
        mode="standard" if large is None else "large",
        participant_count=count,
        participants=participants,
        participants_truncated=count > len(participants),
        participants_hash=digest,
        attestations_root=hex32(record.attestations_root),
        block_number=getattr(record, "block_number", None),
    )


def rounds_out(index: Any, job_id: int, records: Sequence[Any]) -> list[RoundOut]:
    """`round_out` of each indexed round of a job, reading what large rounds need from `index`
    (on the index thread: call inside `Service.index`)."""
    large = index.large_rounds(job_id)
    result = []
    for record in records:
        committed = large.get(int(record.round))
        listed = (
            index.round_participants(job_id, int(record.round), limit=ROUND_PARTICIPANTS_INLINE)
            if committed is not None
            else ()
        )
        result.append(round_out(record, committed, listed))
    return result


def round_participant_out(record: Any) -> RoundParticipantOut:
    """An indexed round participant and where its grant was checked."""
    dataset_id = int(record.dataset_id)
    return RoundParticipantOut(
        dataset_id=str(dataset_id),
        dataset_id_hex=id_hex(dataset_id),
        checked_block=int(record.block_number),
        checked_log_index=int(record.log_index),
    )


def job_out(job_id: int, chain_job: Any, indexed: Any | None) -> JobOut:
    """A job from its stored record, completed by its `JobCreated` event when indexed."""
    purpose = as_bytes(chain_job.purpose)
    return JobOut(
        job_id=str(job_id),
        coordinator=parse_address(str(chain_job.coordinator)),
        purpose=describe_purpose(purpose),
        purpose_id=hex32(purpose),
        last_round=int(chain_job.last_round),
        last_digest=hex32(chain_job.last_digest),
        datasets=[str(int(d)) for d in indexed.datasets] if indexed is not None else None,
        initial_model_digest=hex32(indexed.initial_model_digest) if indexed is not None else None,
        spec_digest=hex32(indexed.spec_digest) if indexed is not None else None,
        block_number=getattr(indexed, "block_number", None),
    )
