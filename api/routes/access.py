"""`GET /v1/datasets/{id}/access`: what a dataset is and where to fetch it, for a holder of a live grant.

The one consumer-scoped read: it takes the access token of `POST /v1/auth/siwe` (not the
service's SOV_API_TOKEN), re-reads the token's grants on chain, and answers only when the
token's scope covers the dataset (and the purpose, when one is asked for).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from api.access_tokens import TokenAuthority, VerifiedToken, with_challenge
from api.auth import bearer_credentials
from api.errors import ApiError
from api.routes.auth import AuthorityDep, base_url
from api.routes.deps import Service, ServiceDep
from api.routes.params import DatasetIdPath, OptPurposeQuery
from api.routes.views import ZERO_ADDRESS, grant_out, id_hex
from api.schemas import DatasetOut, ErrorOut, GrantOut, parse_address

router = APIRouter(tags=["access"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})

access_token_scheme = HTTPBearer(
    auto_error=False, scheme_name="AccessToken", description="access token from POST /v1/auth/siwe"
)


class DatasetAccessOut(BaseModel):
    """A dataset, the grants under which the caller may use it, and the token that showed them."""

    dataset: DatasetOut
    uri: str | None = Field(description="where the owner says the dataset is reached (its registration URI)")
    grants: list[GrantOut] = Field(
        description="the caller's grants on this dataset, as the chain holds them now"
    )
    subject: str = Field(description="the address the token was issued to")
    token_expires_at: int


@router.get(
    "/datasets/{dataset_id}/access",
    response_model=DatasetAccessOut,
    summary="A dataset and where to fetch it, for the holder of a live grant (access token)",
)
def dataset_access(
    dataset_id: DatasetIdPath,
    request: Request,
    authority: AuthorityDep,
    service: ServiceDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(access_token_scheme)],
    purpose: OptPurposeQuery = None,
) -> DatasetAccessOut:
    """401 without a valid, active token; 403 when its scope does not cover this dataset (and purpose)."""
    try:
        verified = _authorised(request, authority, service, dataset_id, purpose)
    except ApiError as error:
        raise with_challenge(error) from None
    covering = [
        g
        for g in verified.grants
        if g.dataset_id == dataset_id and (purpose is None or g.purpose_id == purpose)
    ]
    client = service.client()
    state = client.dataset_state(dataset_id)
    from ledger.index import NotIndexedError

    def query(index: Any) -> Any:
        try:
            return index.dataset(dataset_id)
        except NotIndexedError:
            return None

    indexed = service.index(query)
    dataset = DatasetOut(
        dataset_id=str(dataset_id),
        dataset_id_hex=id_hex(dataset_id),
        owner=None if str(state.owner).lower() == ZERO_ADDRESS else parse_address(str(state.owner)),
        epoch=int(state.epoch),
        retired=bool(state.retired),
        parent_id=str(int(indexed.parent_id)) if indexed is not None else None,
        uri=str(indexed.uri) if indexed is not None else None,
        registered_block=getattr(indexed, "block_number", None),
    )
    grants = [grant_out(client, dataset_id, verified.subject, g.purpose_id) for g in covering]
    return DatasetAccessOut(
        dataset=dataset,
        uri=dataset.uri,
        grants=grants,
        subject=verified.subject,
        token_expires_at=int(verified.claims["exp"]),
    )


def _authorised(
    request: Request, authority: TokenAuthority, service: Service, dataset_id: int, purpose: bytes | None
) -> VerifiedToken:
    """The request's access token, verified, covering the dataset (and purpose), still active."""
    token = bearer_credentials(request)
    if token is None:
        raise ApiError(
            401,
            "token_missing",
            "this read needs an access token: sign in with POST /v1/auth/siwe (or `sov token get`) and "
            "send 'Authorization: Bearer <access_token>'",
        )
    verified = authority.verify(token, base_url=base_url(request))
    if not any(
        g.dataset_id == dataset_id and (purpose is None or g.purpose_id == purpose) for g in verified.grants
    ):
        _insufficient(verified, dataset_id, purpose)
    authority.recheck(service, verified)
    return verified


def _insufficient(token: VerifiedToken, dataset_id: int, purpose: bytes | None) -> None:
    from ledger.purposes import describe_purpose

    wanted = id_hex(dataset_id) if purpose is None else f"{describe_purpose(purpose)}:{id_hex(dataset_id)}"
    scope = str(token.claims.get("scope", ""))
    raise ApiError(
        403,
        "insufficient_scope",
        f"the access token's scope does not cover {wanted} (scope: {scope or 'empty, no live grants'}); "
        "ask the dataset's owner for a grant, then sign in again",
        {"required": wanted, "scope": scope},
    )
