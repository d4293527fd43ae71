"""`/v1/audit`: verify a model's lineage (JSON, PROV-JSON, HTML) and the impact of a dataset or grant."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.errors import ApiError
from api.routes.deps import ServiceDep
from api.routes.params import CidPath, OptAddressQuery, OptDatasetIdQuery, OptPurposeQuery
from api.schemas import ErrorOut

router = APIRouter(tags=["audit"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


class ReportFormat(str, Enum):
    """Audit report renderings."""

    json = "json"
    prov = "prov"
    html = "html"


def _as_json(value: Any) -> Any:
    """`to_json()` may return a JSON string or a dict; the response wants an object."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@router.get(
    "/audit/models/{cid}",
    summary="Rebuild and verify a model's lineage from chain + content store",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def audit_model_route(
    cid: CidPath, service: ServiceDep, format: ReportFormat = ReportFormat.json
) -> Response:
    """The audit report of the model with CID `cid`: `json` (default), `prov` (W3C PROV-JSON) or `html`."""
    from ledger.audit import audit_model

    client = service.client()
    store = service.store()
    report = service.index(lambda index: audit_model(cid, client, index, store))
    if format is ReportFormat.html:
        return HTMLResponse(report.to_html())
    if format is ReportFormat.prov:
        return JSONResponse(_as_json(report.to_prov()), media_type="application/json")
    return JSONResponse(_as_json(report.to_json()))


@router.get("/audit/impact", summary="Which model versions depend on a dataset (or one grant)")
def impact_route(
    service: ServiceDep,
    dataset_id: OptDatasetIdQuery = None,
    grantee: OptAddressQuery = None,
    purpose: OptPurposeQuery = None,
) -> Response:
    """Give `dataset_id` alone for a dataset, or `dataset_id`, `grantee` and `purpose` for one grant."""
    from ledger.audit import impact

    if dataset_id is None:
        raise ApiError(422, "invalid_request", "dataset_id is required", {"field": "dataset_id"})
    if (grantee is None) != (purpose is None):
        raise ApiError(
            422,
            "invalid_request",
            "a grant is named by dataset_id, grantee and purpose together: give both grantee and purpose or neither",
            {"field": "grantee" if grantee is None else "purpose"},
        )
    client = service.client()
    grant = (dataset_id, grantee, purpose) if grantee is not None and purpose is not None else None
    result = service.index(
        lambda index: impact(client=client, index=index, dataset_id=dataset_id, grant=grant)
    )
    to_json = getattr(result, "to_json", None)
    return JSONResponse(_as_json(to_json()) if callable(to_json) else _as_json(result))
