"""What the browser test's `live_service` fixture yields (its own module: `conftest` names clash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LiveService:
    """The service running under uvicorn in its own process group."""

    base_url: str
    token: str
    job: object
    settings: Settings
