"""`/v1/jobs`: training jobs and their committed rounds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.errors import ApiError
from api.routes.deps import ServiceDep
from api.routes.params import JobIdPath, Limit, Offset, RoundPath
from api.routes.views import job_out, round_out
from api.schemas import ErrorOut, JobDetailOut, JobOut, Page, RoundOut

router = APIRouter(tags=["jobs"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


def _chain_job(client: Any, job_id: int) -> Any:
    if job_id > int(client.job_count()):
        raise ApiError(404, "unknown_job", f"job {job_id} does not exist", {"job_id": str(job_id)})
    return client.get_job(job_id)


@router.get("/jobs", response_model=Page[JobOut], summary="Training jobs, newest last")
def list_jobs(service: ServiceDep, limit: Limit = 100, offset: Offset = 0) -> Page[JobOut]:
    """Jobs from the event index, each with its last round and digest read from the chain."""
    client = service.client()
    records = service.index(lambda index: list(index.jobs()))
    page = records[offset : offset + limit]
    items = [job_out(int(r.job_id), client.get_job(int(r.job_id)), r) for r in page]
    return Page[JobOut](items=items, total=len(records), offset=offset, limit=limit)


@router.get("/jobs/{job_id}", response_model=JobDetailOut, summary="A job and its rounds")
def show_job(job_id: JobIdPath, service: ServiceDep) -> JobDetailOut:
    """The job's stored record, its datasets (from `JobCreated`) and every committed round."""
    client = service.client()
    chain_job = _chain_job(client, job_id)
    indexed, rounds = service.index(lambda index: (index.job(job_id), list(index.rounds(job_id))))
    job = job_out(job_id, chain_job, indexed)
    return JobDetailOut(**job.model_dump(), rounds=[round_out(r) for r in rounds])


@router.get("/jobs/{job_id}/rounds", response_model=list[RoundOut], summary="A job's committed rounds")
def list_rounds(job_id: JobIdPath, service: ServiceDep) -> list[RoundOut]:
    """Every `RoundCommitted` of the job, in round order."""
    client = service.client()
    _chain_job(client, job_id)
    rounds = service.index(lambda index: list(index.rounds(job_id)))
    return [round_out(r) for r in rounds]


@router.get("/jobs/{job_id}/rounds/{round}", response_model=RoundOut, summary="One committed round")
def show_round(job_id: JobIdPath, round: RoundPath, service: ServiceDep) -> RoundOut:
    """Round `round` of the job: model digest, manifest CID, participants, attestations root."""
    client = service.client()
    chain_job = _chain_job(client, job_id)
    if round > int(chain_job.last_round):
        raise ApiError(
            404,
            "unknown_round",
            f"job {job_id} has committed {int(chain_job.last_round)} round(s); round {round} does not exist",
            {"job_id": str(job_id), "round": round},
        )
    rounds = service.index(lambda index: list(index.rounds(job_id)))
    for record in rounds:
        if int(record.round) == round:
            return round_out(record)
    raise ApiError(
        404, "unknown_round", f"round {round} of job {job_id} is not in the event index yet", {"round": round}
    )
