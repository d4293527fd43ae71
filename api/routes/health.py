"""`/v1/health`: whether the chain, the event index and the content store answer, and where they are."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.routes.deps import ServiceDep, store_url
from api.schemas import HealthComponent, HealthOut

router = APIRouter(tags=["health"])


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a component is down"}},
    summary="Chain, event index and content store reachability, with their URLs",
)
def health(service: ServiceDep) -> JSONResponse:
    """200 when every component answers, 503 (same body) when one does not."""
    chain_id: int | None = None
    account: str | None = None
    try:
        client = service.client()
        block = client.latest_block()
        chain_id = int(client.chain_id)
        account = client.address
        chain = HealthComponent(
            ok=True, url=service.rpc_url, detail=f"chain {chain_id} at block {int(block.number)}"
        )
    except Exception as exc:  # health reports failures, it does not raise them
        chain = HealthComponent(ok=False, url=service.rpc_url, detail=_reason(exc))
    index_url = f"file://{service.settings.index_path}"
    if chain.ok:
        try:
            new_events = service.index(lambda index: index.sync(), sync=False)
            index = HealthComponent(ok=True, url=index_url, detail=f"synced ({new_events} new events)")
        except Exception as exc:
            index = HealthComponent(ok=False, url=index_url, detail=_reason(exc))
    else:
        index = HealthComponent(ok=False, url=index_url, detail="cannot sync: chain unreachable")
    content_url = store_url(service.settings)
    try:
        from ledger.store import cid_of

        store = service.store()
        store.has(cid_of(b""))
        content = HealthComponent(ok=True, url=content_url, detail=f"{service.settings.store} store answers")
    except Exception as exc:
        content = HealthComponent(ok=False, url=content_url, detail=_reason(exc))
    body = HealthOut(
        ok=chain.ok and index.ok and content.ok,
        chain=chain,
        index=index,
        content_store=content,
        account=account,
        chain_id=chain_id,
        writes_enabled=bool(service.api_settings.token and service.api_settings.account),
    )
    return JSONResponse(status_code=200 if body.ok else 503, content=body.model_dump())
