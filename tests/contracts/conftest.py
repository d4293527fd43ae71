"""Fixtures for the contract tests (helpers live in devchain.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contracts.devchain import Chain, Deployed, deploy_all, running_anvil


@pytest.fixture()
def chain() -> Iterator[Chain]:
    """A fresh anvil with ten funded dev accounts, stopped after the test."""
    with running_anvil() as running:
        yield running


@pytest.fixture()
def deployed(chain: Chain) -> Deployed:
    """The three contracts on a fresh anvil, deployed by dev account 0."""
    return deploy_all(chain, chain.accounts[0])
