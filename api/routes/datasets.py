"""`/v1/datasets`: register a dataset, show one, list them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.errors import ApiError
from api.routes.deps import ServiceDep, require_write
from api.routes.params import DatasetIdPath, Limit, Offset, OptAddressQuery
from api.routes.views import ZERO_ADDRESS, dataset_from_index, id_hex, receipt_out
from api.schemas import DatasetOut, ErrorOut, Page, RegisterDatasetOut, RegisterDatasetRequest, parse_address

router = APIRouter(tags=["datasets"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


def _dataset_out(client: Any, dataset_id: int, indexed: Any | None) -> DatasetOut:
    state = client.dataset_state(dataset_id)
    owner = str(state.owner)
    if owner.lower() == ZERO_ADDRESS:
        raise ApiError(
            404,
            "unknown_dataset",
            f"dataset {id_hex(dataset_id)} is not registered",
            {"dataset_id": str(dataset_id)},
        )
    return DatasetOut(
        dataset_id=str(dataset_id),
        dataset_id_hex=id_hex(dataset_id),
        owner=parse_address(owner),
        epoch=int(state.epoch),
        retired=bool(state.retired),
        parent_id=str(int(indexed.parent_id)) if indexed is not None else None,
        uri=str(indexed.uri) if indexed is not None else None,
        registered_block=getattr(indexed, "block_number", None),
    )


@router.post(
    "/datasets",
    status_code=201,
    response_model=RegisterDatasetOut,
    dependencies=[Depends(require_write)],
    summary="Register a dataset (its deed is minted to the service's operator account)",
)
def register_dataset(body: RegisterDatasetRequest, service: ServiceDep) -> RegisterDatasetOut:
    """Register the dataset whose content root is `content_root` (or the digest inside `cid`)."""
    if body.content_root is not None:
        root = body.content_root
    else:
        from ledger.store import content_root

        assert body.cid is not None  # the model validator guarantees exactly one
        root = content_root(body.cid)
    if root == b"\x00" * 32:
        raise ApiError(
            422, "invalid_request", "content_root: zero is not a content hash", {"field": "content_root"}
        )
    client = service.writer()
    with service.write_lock:
        dataset_id, receipt = client.register_dataset(root, parent_id=body.parent_id, uri=body.uri)
    state = client.dataset_state(dataset_id)
    dataset = DatasetOut(
        dataset_id=str(dataset_id),
        dataset_id_hex=id_hex(dataset_id),
        owner=parse_address(str(state.owner)),
        epoch=int(state.epoch),
        retired=bool(state.retired),
        parent_id=str(body.parent_id),
        uri=body.uri,
        registered_block=int(receipt.block_number),
    )
    return RegisterDatasetOut(dataset=dataset, receipt=receipt_out(receipt))


@router.get(
    "/datasets/{dataset_id}", response_model=DatasetOut, summary="A dataset: owner, epoch, retired, uri"
)
def show_dataset(dataset_id: DatasetIdPath, service: ServiceDep) -> DatasetOut:
    """The dataset's on-chain state, with its registration details from the event index."""
    client = service.client()
    from ledger.index import NotIndexedError

    def query(index: Any) -> Any:
        try:
            return index.dataset(dataset_id)
        except NotIndexedError:  # registered since the last sync, or not at all: the chain decides
            return None

    indexed = service.index(query)
    return _dataset_out(client, dataset_id, indexed)


@router.get(
    "/datasets", response_model=Page[DatasetOut], summary="Registered datasets, optionally of one owner"
)
def list_datasets(
    service: ServiceDep, owner: OptAddressQuery = None, limit: Limit = 100, offset: Offset = 0
) -> Page[DatasetOut]:
    """Datasets from the event index (synced first), filtered by their current deed holder."""

    def query(index: Any) -> tuple[list[Any], int]:
        return list(index.datasets()), int(index.synced_block())

    records, synced = service.index(query)
    items = [dataset_from_index(r) for r in records if owner is None or str(r.owner).lower() == owner.lower()]
    return Page[DatasetOut](
        items=items[offset : offset + limit],
        total=len(items),
        offset=offset,
        limit=limit,
        indexed_block=synced,
    )
