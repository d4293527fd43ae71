"""`/v1/jobs`: training jobs and their committed rounds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.errors import ApiError
from api.routes.deps import ServiceDep
from api.routes.params import JobIdPath, Limit, Offset, RoundPath
from api.routes.views import job_out, round_participant_out, rounds_out
from api.schemas import ErrorOut, JobDetailOut, JobOut, Page, RoundOut, RoundParticipantOut

router = APIRouter(tags=["jobs"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


def _chain_job(client: Any, job_id: int) -> Any:
    if job_id > int(client.job_count()):
        raise ApiError(404, "unknown_job", f"job {job_id} does not exist", {"job_id": str(job_id)})
    return client.get_job(job_id)


def _committed_round(job_id: int, round: int, chain_job: Any) -> None:
    if round > int(chain_job.last_round):
        raise ApiError(
            404,
            "unknown_round",
            f"job {job_id} has committed {int(chain_job.last_round)} round(s); round {round} does not exist",
            {"job_id": str(job_id), "round": round},
        )


def _not_indexed(job_id: int, round: int) -> ApiError:
    return ApiError(
        404, "unknown_round", f"round {round} of job {job_id} is not in the event index yet", {"round": round}
    )


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
    indexed, rounds = service.index(
        lambda index: (index.job(job_id), rounds_out(index, job_id, list(index.rounds(job_id))))
    )
    job = job_out(job_id, chain_job, indexed)
    return JobDetailOut(**job.model_dump(), rounds=rounds)


@router.get("/jobs/{job_id}/rounds", response_model=list[RoundOut], summary="A job's committed rounds")
def list_rounds(job_id: JobIdPath, service: ServiceDep) -> list[RoundOut]:
    """Every `RoundCommitted` of the job, in round order (large rounds with their batches' participants)."""
    client = service.client()
    _chain_job(client, job_id)
    return service.index(lambda index: rounds_out(index, job_id, list(index.rounds(job_id))))


@router.get("/jobs/{job_id}/rounds/{round}", response_model=RoundOut, summary="One committed round")
def show_round(job_id: JobIdPath, round: RoundPath, service: ServiceDep) -> RoundOut:
    """Round `round` of the job: model digest, manifest CID, participants, attestations root."""
    client = service.client()
    _committed_round(job_id, round, _chain_job(client, job_id))

    def query(index: Any) -> list[RoundOut]:
        return rounds_out(index, job_id, [r for r in index.rounds(job_id) if int(r.round) == round])

    found = service.index(query)
    if not found:
        raise _not_indexed(job_id, round)
    return found[0]


@router.get(
    "/jobs/{job_id}/rounds/{round}/participants",
    response_model=Page[RoundParticipantOut],
    summary="A committed round's participants, a page at a time",
)
def list_round_participants(
    job_id: JobIdPath, round: RoundPath, service: ServiceDep, limit: Limit = 100, offset: Offset = 0
) -> Page[RoundParticipantOut]:
    """Every dataset of the round in ascending id order, with where the contract checked its
    grant (a large round's batch, or the commit). A large round lists its batches' datasets."""
    client = service.client()
    _committed_round(job_id, round, _chain_job(client, job_id))

    def query(index: Any) -> tuple[bool, int, list[Any], int]:
        indexed = any(int(r.round) == round for r in index.rounds(job_id))
        total = index.round_participant_count(job_id, round)
        page = index.round_participants(job_id, round, limit=limit, offset=offset)
        return indexed, total, page, int(index.synced_block())

    indexed, total, page, synced = service.index(query)
    if not indexed:
        raise _not_indexed(job_id, round)
    return Page[RoundParticipantOut](
        items=[round_participant_out(p) for p in page],
        total=total,
        offset=offset,
        limit=limit,
        indexed_block=synced,
    )
