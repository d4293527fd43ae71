"""The web page: owner view at `/`, audit view at `/audit/{cid}`, and its static files.

Everything the page needs is in `api/web/` and served from here: no CDN, no external fonts.
`/v1/web/config` tells the page what it needs to act with the owner's own wallet (chain id,
contract addresses, purpose ids, the contracts' custom errors); the page builds and the wallet
signs every owner transaction, so the service never holds the owner's key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.errors import ApiError
from api.routes.deps import ServiceDep
from api.schemas import ErrorOut

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_STATIC = {
    "app.js": "text/javascript",
    "codec.js": "text/javascript",
    "wallet.js": "text/javascript",
    "lineage.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# The page may only load what this service serves; inline scripts and third-party origins are refused.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"

router = APIRouter(include_in_schema=False)
# Mounted under /v1 with the read guard (api/app.py), and documented in the OpenAPI schema.
config_router = APIRouter(tags=["web"], responses={"4XX": {"model": ErrorOut}, "5XX": {"model": ErrorOut}})


def _page() -> FileResponse:
    return FileResponse(
        WEB_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/")
def owner_page() -> FileResponse:
    """The owner view: datasets and grants of an address."""
    return _page()


@router.get("/audit/{cid}")
def audit_page(cid: str) -> FileResponse:
    """The audit view of a model (the page fetches `/v1/audit/models/{cid}`)."""
    return _page()


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for it whatever the page says."""
    return FileResponse(WEB_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The page's own script and stylesheet."""
    media_type = _STATIC.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return FileResponse(WEB_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


class ErrorParamOut(BaseModel):
    """One argument of a contract's custom error."""

    name: str
    type: str = Field(description="canonical ABI type, e.g. uint256, address")


class ContractErrorOut(BaseModel):
    """A custom error of the deployed contracts, by the selector that starts its revert data."""

    selector: str = Field(description="0x + 4 bytes: keccak256 of the error's signature")
    name: str
    inputs: list[ErrorParamOut]


class PurposeOut(BaseModel):
    """A purpose of the vocabulary and its on-chain id (keccak256 of the name)."""

    name: str
    id: str


class Eip712DomainOut(BaseModel):
    """Name and version of the UsageGrants EIP-712 domain (chain id and contract are above)."""

    name: str
    version: str


class WebConfigOut(BaseModel):
    """What a page or wallet client needs to build owner transactions itself: all public facts."""

    chain_id: int
    contracts: dict[str, str] = Field(description="DatasetRegistry, UsageGrants, TrainingLedger addresses")
    purposes: list[PurposeOut]
    eip712: Eip712DomainOut
    errors: list[ContractErrorOut]
    service_account: str | None = Field(
        description="the operator account writes behind the token use (null when writes are off)"
    )


@config_router.get(
    "/web/config",
    response_model=WebConfigOut,
    summary="Chain id, contract addresses, purposes and contract errors, for clients that sign themselves",
)
def web_config(service: ServiceDep) -> WebConfigOut:
    """What the owner page needs to build transactions for the owner's own wallet.

    Errors are listed with their selectors, taken from the deployed contracts' ABIs, so the page
    names a revert (`DatasetRegistryAlreadyRegistered(datasetId=..., owner=...)`) instead of
    showing hex.
    """
    from ledger.chain.abi import CONTRACT_NAMES
    from ledger.purposes import PURPOSES
    from ledger.signed_grants import DOMAIN_NAME, DOMAIN_VERSION

    client = service.client()
    errors: dict[bytes, ContractErrorOut] = {}
    for name in CONTRACT_NAMES:
        for selector, error in client.abis[name].errors.items():
            inputs = zip(error.input_names, error.input_types, strict=True)
            errors.setdefault(
                selector,
                ContractErrorOut(
                    selector="0x" + selector.hex(),
                    name=error.name,
                    inputs=[ErrorParamOut(name=n, type=t) for n, t in inputs],
                ),
            )
    return WebConfigOut(
        chain_id=int(client.chain_id),
        contracts={name: client.deployment.address(name) for name in CONTRACT_NAMES},
        purposes=[PurposeOut(name=name, id="0x" + value.hex()) for name, value in PURPOSES.items()],
        eip712=Eip712DomainOut(name=DOMAIN_NAME, version=DOMAIN_VERSION),
        errors=list(errors.values()),
        service_account=client.address if service.api_settings.account else None,
    )
