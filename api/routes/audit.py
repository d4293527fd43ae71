"""`/v1/audit`: verify a model's lineage (JSON, PROV-JSON, HTML, graph); impact of a dataset or grant."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.errors import ApiError
from api.routes.deps import Service, ServiceDep
from api.routes.params import CidPath, OptAddressQuery, OptDatasetIdQuery, OptPurposeQuery
from api.schemas import ErrorOut

if TYPE_CHECKING:
    from ledger.audit import AuditReport
    from ledger.index import EventIndex

router = APIRouter(tags=["audit"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


class ReportFormat(StrEnum):
    """Audit report renderings."""

    json = "json"
    prov = "prov"
    html = "html"


def _audit(service: Service, cid: str, extra: Any = None) -> tuple[AuditReport, Any]:
    """Run the audit on the index thread; `extra(report, index)` runs there too, after it."""
    from ledger.audit import audit_model

    client = service.client()
    store = service.store()

    def run(index: EventIndex) -> tuple[AuditReport, Any]:
        report = audit_model(cid, client, index, store)
        return report, (extra(report, index) if extra is not None else None)

    # The audit syncs the index itself; no second sync here.
    return service.index(run, sync=False)


@router.get(
    "/audit/models/{cid}",
    summary="Rebuild and verify a model's lineage from chain + content store",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def audit_model_route(
    cid: CidPath, service: ServiceDep, format: ReportFormat = ReportFormat.json
) -> Response:
    """The audit report of the model with CID `cid`: `json` (default), `prov` (W3C PROV-JSON) or `html`.

    A report whose checks fail is still a 200: the audit ran, and its verdict is in the body.
    """
    report, _ = _audit(service, cid)
    if format is ReportFormat.html:
        return HTMLResponse(report.to_html())
    if format is ReportFormat.prov:
        return JSONResponse(report.to_prov())
    return JSONResponse(report.to_json())


def _mark_revoked_grants(report: AuditReport, index: EventIndex) -> dict[str, Any]:
    """The report's graph, with datasets whose grant to the job's coordinator was revoked since marked.

    The audit judges each round at its own block (a later revocation does not make a round
    invalid); a reader of the graph still needs to see that the lab may no longer use the data.
    """
    graph: dict[str, Any] = report.to_graph()
    job = report.lineage.job
    for node in graph["nodes"]:
        if node.get("kind") != "dataset":
            continue
        dataset_id = int(str(node["id"]).split(":", 1)[1], 16)
        for grant in index.grants(dataset_id=dataset_id, grantee=job.coordinator):
            if bytes(grant.purpose) == bytes(job.purpose) and grant.revoked:
                node["revoked"] = True
                node["revoked_block"] = grant.revoked_block
                node["revoked_tx"] = grant.revoked_tx
    graph["job_id"] = str(job.job_id)
    graph["coordinator"] = job.coordinator
    return graph


@router.get("/audit/models/{cid}/lineage", summary="The lineage graph the web page draws, with node statuses")
def lineage_route(cid: CidPath, service: ServiceDep) -> JSONResponse:
    """`{summary, verified, checks, nodes, edges}`: datasets -> rounds -> model versions, with statuses."""
    _, graph = _audit(service, cid, _mark_revoked_grants)
    graph["model_cid"] = cid
    return JSONResponse(graph)


@router.get("/audit/impact", summary="Which model versions depend on a dataset (or on one grant)")
def impact_route(
    service: ServiceDep,
    dataset_id: OptDatasetIdQuery = None,
    grantee: OptAddressQuery = None,
    purpose: OptPurposeQuery = None,
) -> JSONResponse:
    """Give `dataset_id` alone for a dataset, or `dataset_id`, `grantee` and `purpose` for one grant."""
    from ledger.audit import impact

    if dataset_id is None:
        raise ApiError(422, "invalid_request", "dataset_id is required", {"field": "dataset_id"})
    if (grantee is None) != (purpose is None):
        raise ApiError(
            422,
            "invalid_request",
            "a grant is named by dataset_id, grantee and purpose together: "
            "give both grantee and purpose, or neither",
            {"field": "grantee" if grantee is None else "purpose"},
        )
    client = service.client()
    store = service.store()
    grant = (dataset_id, grantee, purpose) if grantee is not None and purpose is not None else None
    report = service.index(
        lambda index: impact(
            index=index,
            client=client,
            dataset_id=None if grant is not None else dataset_id,
            grant=grant,
            store=store,
            sync=False,
        )
    )
    return JSONResponse(report.to_json())
