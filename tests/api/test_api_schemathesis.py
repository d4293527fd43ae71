"""Property-based run of the app's own OpenAPI schema against a real devnet: no request may give a 5xx.

Writes carry the service's token so the fuzzer reaches the chain-facing code, not only the auth guard.
Examples are bounded per operation so the run stays well under two minutes on two cores.
"""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation

from api.app import create_app
from api.auth import ApiSettings
from ledger.deploy import save_deployment
from ledger.settings import Settings

FUZZ_TOKEN = "fuzz-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def fuzzed_app(devnet: Any, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    home: Path = tmp_path_factory.mktemp("fuzz-home")
    app_settings = Settings(home=home, rpc_url=devnet.node.rpc_url)
    save_deployment(app_settings, devnet.deployment)
    from pydantic import SecretStr

    return create_app(
        app_settings, ApiSettings(token=SecretStr(FUZZ_TOKEN), account="dev0", index_sync_interval=0.5)
    )


def _run_operation(
    operation: APIOperation, mode: GenerationMode, examples: int, statuses: Counter[str]
) -> list[str]:
    """Draw `examples` cases of one operation in `mode`; return a line per 5xx response."""
    server_errors: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {FUZZ_TOKEN}"})
        statuses[f"{operation.method.upper()} {operation.path} {response.status_code}"] += 1
        if response.status_code >= 500:
            server_errors.append(
                f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.300} "
                f"-> {response.status_code} {response.text[:300]}"
            )

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to mutate (no parameters, no body).
        if mode is GenerationMode.POSITIVE:
            raise
    return server_errors


def test_no_request_gives_a_server_error(fuzzed_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    server_errors: list[str] = []
    statuses: Counter[str] = Counter()
    for operation in operations:
        for mode, examples in ((GenerationMode.POSITIVE, 30), (GenerationMode.NEGATIVE, 15)):
            server_errors += _run_operation(operation, mode, examples, statuses)
    assert server_errors == []
    # The run must have reached the chain, not only the validators: some writes and reads succeeded.
    for expected in ("POST /v1/datasets 201", "GET /v1/grants/check 200", "GET /v1/datasets 200"):
        assert statuses[expected] > 0, (expected, statuses)
