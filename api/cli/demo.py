"""`sov demo`: the whole story on embedded defaults, in one command.

A devnet comes up and the contracts are deployed; four hospitals register their
partitions of the breast-cancer data set and grant the lab `ai-training` for a limited
time; the job runs; in the middle, one hospital revokes and its node refuses from then on;
the run ends with the audit of the final model, verified from the chain and the content
store alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from ledger.audit import AuditReport, audit
from ledger.index import EventIndex
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import open_store

from .chain import open_client
from .common import JsonFlag, console, emit_json, err_console, settings, user_errors
from .train import job_document, print_rounds, run_training

if TYPE_CHECKING:
    from fl_node.coordinator import RoundOutcome
    from fl_node.runner import Enrollment, Federation

REVOKING_HOSPITAL = 2  # the third hospital (0-based) changes its mind


@user_errors
def demo(
    rounds: Annotated[int, typer.Option(min=2, max=50, help="rounds to run")] = 5,
    revoke_at: Annotated[int, typer.Option(help="round in which the hospital revokes (0 = never)")] = 3,
    seed: Annotated[int, typer.Option(help="seed of the split and the training")] = 0,
    serve: Annotated[
        bool, typer.Option("--serve", help="keep the API and web page running afterwards")
    ] = False,
    api_url: Annotated[
        str, typer.Option(help="where a running `sov serve` answers")
    ] = "http://127.0.0.1:8000",
    json: JsonFlag = False,
) -> None:
    """Devnet, four hospitals, a gated federated job with a mid-job revocation, and its audit."""
    from fl_node.runner import TrainConfig  # imports torch: only when the demo runs

    config = settings()

    def say(text: str) -> None:
        if not json:
            err_console.print(text, highlight=False)

    train = TrainConfig(
        data="breast_cancer", nodes=4, rounds=rounds, partition="iid", seed=seed, grant_seconds=7 * 24 * 3600
    )
    revoked: dict[str, Any] = {}

    def on_dispatch(round_number: int, enrollment: Enrollment, federation: Federation) -> None:
        if round_number != revoke_at:
            return
        owner = enrollment.owners[REVOKING_HOSPITAL]
        dataset_id = federation.dataset_ids[REVOKING_HOSPITAL]
        assert enrollment.lab.address is not None
        # The revocation lands after the coordinator chose this round's nodes: the node's
        # own on-chain check is what stops it, and later rounds do not select it at all.
        receipt = owner.revoke_grant(dataset_id, enrollment.lab.address, purpose_id(train.purpose))
        revoked.update(dataset_id=dataset_id, owner=owner.address, block=receipt.block_number)
        say(
            f"[yellow]hospital {REVOKING_HOSPITAL + 1} ({owner.address}) revokes the lab's grant "
            f"at block {receipt.block_number}[/]"
        )

    def on_round(outcome: RoundOutcome) -> None:
        for dataset_id, reason in outcome.refused.items():
            if dataset_id == revoked.get("dataset_id"):
                say(f"  round {outcome.round_number}: hospital {REVOKING_HOSPITAL + 1}'s node: {reason}")

    say("[bold]sovereign-ledger demo[/]: 4 hospitals, 1 research lab, purpose 'ai-training'")
    session = run_training(config, train, show_progress=not json, on_dispatch=on_dispatch, on_round=on_round)
    say("auditing the final model from the chain and the content store alone ...")
    report = _audit(config, session.run.job.last_model_cid, session.rpc_url)
    document = job_document(session)
    document.update(
        revoked_dataset=str(revoked["dataset_id"]) if revoked else None,
        revoked_by=revoked.get("owner"),
        revoked_at_block=revoked.get("block"),
        hospitals=[
            {"owner": owner.address, "dataset_id": str(dataset_id)}
            for owner, dataset_id in zip(
                session.enrollment.owners, session.federation.dataset_ids, strict=True
            )
        ],
        audit_verified=report.ok,
        audit_summary=report.summary(),
    )
    if json:
        emit_json(document)
    else:
        print_rounds(session)
        report.print(console.get())
        console.print(f"final model CID {document['final_model_cid']}")
        console.print("explore: sov dataset list | sov grant list | sov audit " + document["final_model_cid"])
    if not report.ok:
        raise typer.Exit(code=1)
    if serve:
        _serve(document["final_model_cid"], api_url)
    elif not json and _service_running(api_url):
        console.print(f"audit page: {api_url}/audit/{document['final_model_cid']}")


def _audit(config: Settings, model_cid: str, rpc_url: str) -> AuditReport:
    """Audits the final model as an outsider would: chain events and the content store only."""
    auditor = config.model_copy(update={"rpc_url": rpc_url})
    client = open_client(auditor)
    with EventIndex(auditor, client) as index:
        return audit(model_cid, client=client, index=index, store=open_store(auditor))


def _service_running(api_url: str) -> bool:
    """Whether a `sov serve` answers at `api_url` (checked quickly; the demo does not wait for it)."""
    try:
        return httpx.get(f"{api_url}/v1/health", timeout=0.5).status_code < 500
    except httpx.HTTPError:
        return False


def _serve(model_cid: str, api_url: str) -> None:
    from .serve import serve

    url = httpx.URL(api_url)
    console.print(f"audit page: {api_url}/audit/{model_cid}  (Ctrl-C stops the service)")
    serve(host=url.host, port=url.port or 8000)
