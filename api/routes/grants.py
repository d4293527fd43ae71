"""`/v1/grants`: issue, redeem an owner-signed grant, revoke, check, list."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends

from api.errors import ApiError
from api.routes.deps import ServiceDep, require_write
from api.routes.params import (
    AddressQuery,
    DatasetIdQuery,
    Limit,
    Offset,
    OptAddressQuery,
    OptDatasetIdQuery,
    OptPurposeQuery,
    PurposeQuery,
)
from api.routes.views import (
    ZERO_ADDRESS,
    grant_from_index,
    grant_out,
    grant_view,
    id_hex,
    receipt_out,
    status_name,
)
from api.schemas import (
    CheckOut,
    ErrorOut,
    GrantOut,
    GrantWriteOut,
    IssueGrantRequest,
    Page,
    RedeemGrantOut,
    RedeemGrantRequest,
    RevokeGrantRequest,
)
from ledger.chain.types import GrantTerms
from ledger.errors import GrantTermsError, SignedGrantFormatError, SignedGrantVersionError
from ledger.signed_grants import DOMAIN_NAME, SignedGrant, grant_from_signed

router = APIRouter(tags=["grants"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})

_REASONS = {
    "authorized": "the grant is valid now",
    "no_grant": "no grant exists for this dataset, grantee and purpose",
    "not_yet_valid": "the grant's window has not started",
    "expired": "the grant's window is over",
    "revoked": "the grant was revoked by the owner or renounced by the grantee",
    "dataset_retired": "the dataset was retired (consent withdrawn)",
    "owner_changed": "the deed changed hands after the grant was issued",
    "unknown_dataset": "the dataset is not registered",
}


def _chain_now(client: Any) -> int:
    return int(client.latest_block().timestamp)


def _require_dataset(client: Any, dataset_id: int) -> None:
    state = client.dataset_state(dataset_id)
    if str(state.owner).lower() == ZERO_ADDRESS:
        raise ApiError(
            404,
            "unknown_dataset",
            f"dataset {id_hex(dataset_id)} is not registered",
            {"dataset_id": str(dataset_id)},
        )


def _check_window(
    not_before: int,
    expires_at: int,
    now: int,
    *,
    start_field: str = "not_before",
    end_field: str = "expires_at",
) -> None:
    """Refuse windows the contract would refuse, with field names instead of a revert."""
    if expires_at <= now:
        raise ApiError(
            422,
            "invalid_request",
            f"{end_field} {expires_at} is in the past (chain time is {now}); give a later time",
            {"field": end_field, "now": now},
        )
    if expires_at < not_before:
        raise ApiError(
            422,
            "invalid_request",
            f"{end_field} {expires_at} is before {start_field} {not_before}: the window is empty",
            {"field": end_field},
        )


def _terms(body: IssueGrantRequest) -> GrantTerms | None:
    """The request's terms as the chain stores them, or a 422 naming the field and what is valid."""
    if body.terms is None:
        return None
    given = body.terms
    try:
        return GrantTerms(given.epsilon, given.delta, given.min_participants, given.max_rounds)
    except GrantTermsError as error:
        message = str(error)
        field = next(
            (f for f in ("epsilon", "delta", "min_participants", "max_rounds") if message.startswith(f)),
            "terms",
        )
        raise ApiError(
            422,
            "invalid_request",
            f"terms.{field}: {message}",
            {"fields": [{"field": f"terms.{field}", "message": message, "type": "grant_terms"}]},
        ) from None


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantWriteOut,
    dependencies=[Depends(require_write)],
    summary="Issue (or re-issue) a grant on a dataset the operator account owns or operates",
)
def issue_grant(body: IssueGrantRequest, service: ServiceDep) -> GrantWriteOut:
    """Grant `grantee` the use of `dataset_id` for `purpose` in [not_before, expires_at], with the
    request's terms (none when absent; a re-issue replaces the previous terms)."""
    terms = _terms(body)
    client = service.writer()
    now = _chain_now(client)
    _check_window(body.not_before, body.expires_at, now)
    _require_dataset(client, body.dataset_id)
    with service.write_lock:
        receipt = client.issue_grant(
            body.dataset_id, body.grantee, body.purpose, body.not_before, body.expires_at, terms
        )
    grant = grant_out(
        client, body.dataset_id, body.grantee, body.purpose, block_number=int(receipt.block_number)
    )
    return GrantWriteOut(grant=grant, receipt=receipt_out(receipt))


_FIELD_PATH = re.compile(r"^((?:domain|message|types)\.\w+)")
_FIELD_LIST = re.compile(r"^(domain|message) (?:lacks|has) (\w+)")
_MISSING_KEYS = re.compile(r"; missing (\w+)")


def _format_field(message: str, document: dict[str, Any]) -> str:
    """The document field a `SignedGrantFormatError` message is about (its messages lead with it)."""
    if "`signature`" in message:
        return "signature"
    named = _FIELD_PATH.match(message)
    if named:
        return named.group(1)
    listed = _FIELD_LIST.match(message)
    if listed:
        return f"{listed.group(1)}.{listed.group(2)}"
    if message.startswith("domain is "):  # the name or the version is not UsageGrants 1
        return "domain.name" if document["domain"].get("name") != DOMAIN_NAME else "domain.version"
    missing = _MISSING_KEYS.search(message)
    if missing:
        return missing.group(1)
    return message.split(" ", 1)[0] if message.startswith("primaryType ") else "request"


def _format_error(error: SignedGrantFormatError, document: dict[str, Any]) -> ApiError:
    """A malformed signed grant as the typed 422 body, naming the field like a validation error."""
    if isinstance(error, SignedGrantVersionError):
        field = "domain.version"
    else:
        field = _format_field(str(error), document)
    return ApiError(
        422,
        "invalid_request",
        f"invalid request: {error}",
        {"fields": [{"field": field, "message": str(error), "type": "signed_grant"}]},
    )


def _check_signed_grant(client: Any, grant: SignedGrant) -> None:
    """Refuse, with field names, what the contract would refuse: another chain or deployment, a
    deadline or window already over, a dataset nobody registered."""
    if grant.chain_id != client.chain_id:
        raise ApiError(
            422,
            "invalid_request",
            f"domain.chainId {grant.chain_id} is not this chain ({client.chain_id}); "
            "the signature cannot verify here",
            {"field": "domain.chainId"},
        )
    grants_address = client.deployment.address("UsageGrants")
    if grant.verifying_contract.lower() != grants_address.lower():
        raise ApiError(
            422,
            "invalid_request",
            f"domain.verifyingContract {grant.verifying_contract} is not this deployment's "
            f"UsageGrants ({grants_address})",
            {"field": "domain.verifyingContract"},
        )
    now = _chain_now(client)
    if grant.deadline < now:
        raise ApiError(
            422,
            "invalid_request",
            f"message.deadline {grant.deadline} is in the past (chain time is {now}); "
            "ask the owner to sign again",
            {"field": "message.deadline", "now": now},
        )
    _check_window(
        grant.not_before,
        grant.expires_at,
        now,
        start_field="message.notBefore",
        end_field="message.expiresAt",
    )
    _require_dataset(client, grant.dataset_id)


@router.post(
    "/grants/redeem",
    status_code=201,
    response_model=RedeemGrantOut,
    dependencies=[Depends(require_write)],
    summary="Submit a grant the dataset owner signed off-chain (EIP-712 typed data + signature)",
)
def redeem_grant(body: RedeemGrantRequest, service: ServiceDep) -> RedeemGrantOut:
    """Submit an owner-signed `Grant`; the service pays the gas, the owner's signature is the authority.

    Takes what `sov grant redeem` takes: any wallet's eth_signTypedData_v4 JSON (integers as
    numbers, decimal or 0x-hex strings) with an EOA owner's 65- or 64-byte signature or a contract
    (EIP-1271) owner's signature of any length. Reports the deed owner that authorised the grant.
    A grant signed for UsageGrants version 1 (no terms) is refused (422, field domain.version):
    the owner signs it again.
    """
    # Unset fields stay absent (not None), so the parser names a missing terms field or a v1 type.
    document = body.model_dump(mode="python", exclude_unset=True)
    try:
        grant = grant_from_signed(document)
    except SignedGrantFormatError as error:
        raise _format_error(error, document) from None
    client = service.writer()
    _check_signed_grant(client, grant)
    try:
        with service.write_lock:
            authority, receipt = client.redeem_signed_grant(grant)
    except SignedGrantFormatError as error:  # e.g. a signature of the wrong length for an EOA owner
        raise _format_error(error, document) from None
    written = grant_out(
        client, grant.dataset_id, grant.grantee, grant.purpose, block_number=int(receipt.block_number)
    )
    return RedeemGrantOut(
        grant=written,
        receipt=receipt_out(receipt),
        owner=authority.owner,
        owner_kind="contract" if authority.owner_is_contract else "account",
        signer=None if authority.owner_is_contract else authority.signer,
    )


@router.post(
    "/grants/revoke",
    response_model=GrantWriteOut,
    dependencies=[Depends(require_write)],
    summary="Revoke a grant (operator account must own or operate the dataset)",
)
def revoke_grant(body: RevokeGrantRequest, service: ServiceDep) -> GrantWriteOut:
    """Revoke the grant keyed by (dataset_id, grantee, purpose); it stops authorising from this block on."""
    client = service.writer()
    _require_dataset(client, body.dataset_id)
    with service.write_lock:
        receipt = client.revoke_grant(body.dataset_id, body.grantee, body.purpose)
    grant = grant_out(
        client, body.dataset_id, body.grantee, body.purpose, block_number=int(receipt.block_number)
    )
    return GrantWriteOut(grant=grant, receipt=receipt_out(receipt))


@router.get(
    "/grants/check", response_model=CheckOut, summary="May `grantee` use `dataset_id` for `purpose` now?"
)
def check_grant(
    dataset_id: DatasetIdQuery, grantee: AddressQuery, purpose: PurposeQuery, service: ServiceDep
) -> CheckOut:
    """The chain's answer at the latest block, with the reason and the stored grant (if any)."""
    client = service.client()
    # Every read at one block, so the answer is a consistent snapshot even while blocks arrive.
    # One batched round trip at the head this service last saw; the batch also returns the
    # current head, and when a newer block arrived meanwhile the check is asked again at it, so
    # the answer never lags the chain. (It was 4 sequential RPCs per check; see bench/bench_api.py.)
    head = service.head
    if head is None:
        head = client.latest_block().number
    snapshot = client.grant_snapshot(dataset_id, grantee, purpose, block=head)
    if snapshot.head != snapshot.block.number:
        snapshot = client.grant_snapshot(dataset_id, grantee, purpose, block=snapshot.head)
    service.head = snapshot.block.number
    status = status_name(snapshot.status)
    grant: GrantOut | None = None
    if status not in ("no_grant", "unknown_dataset"):
        grant = grant_view(dataset_id, grantee, purpose, snapshot.grant, snapshot.status)
    return CheckOut(
        authorized=status == "authorized",
        reason=_REASONS.get(status, status),
        grant=grant,
        block_number=int(snapshot.block.number),
    )


@router.get("/grants", response_model=Page[GrantOut], summary="Grants, by dataset, grantee, purpose or owner")
def list_grants(
    service: ServiceDep,
    dataset_id: OptDatasetIdQuery = None,
    grantee: OptAddressQuery = None,
    purpose: OptPurposeQuery = None,
    owner: OptAddressQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[GrantOut]:
    """The current grant of every key ever issued that matches, with its status at the chain's time."""
    client = service.client()
    now = _chain_now(client)

    def query(index: Any) -> tuple[list[Any], dict[int, str], int]:
        grants = list(index.grants(dataset_id=dataset_id, grantee=grantee))
        owners = {int(d.dataset_id): str(d.owner).lower() for d in index.datasets()} if owner else {}
        return grants, owners, int(index.synced_block())

    records, owners, synced = service.index(query)
    items = [
        grant_from_index(r, now)
        for r in records
        if (purpose is None or bytes(r.purpose) == purpose)
        and (owner is None or owners.get(int(r.dataset_id)) == owner.lower())
    ]
    return Page[GrantOut](
        items=items[offset : offset + limit],
        total=len(items),
        offset=offset,
        limit=limit,
        indexed_block=synced,
    )
