"""The purpose vocabulary."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from ledger.errors import UnknownPurposeError
from ledger.purposes import PURPOSES, describe_purpose, purpose_id, purpose_name
from tests.conftest import DeployedChain


def test_purposes_are_keccak_of_their_names() -> None:
    assert list(PURPOSES) == ["ai-training", "ai-inference", "data-mining", "analytics"]
    for name, value in PURPOSES.items():
        assert value == keccak(text=name)
        assert purpose_id(name) == value
        assert purpose_id("0x" + value.hex()) == value
        assert purpose_id(value) == value
        assert purpose_name(value) == name


def test_purposes_match_the_contract_constants(deployed: DeployedChain) -> None:
    client = deployed[0]
    for constant, name in [
        ("AI_TRAINING", "ai-training"),
        ("AI_INFERENCE", "ai-inference"),
        ("DATA_MINING", "data-mining"),
        ("ANALYTICS", "analytics"),
    ]:
        assert client._call("UsageGrants", constant, [])[0] == PURPOSES[name]


def test_unknown_purpose_suggests_the_closest() -> None:
    with pytest.raises(
        UnknownPurposeError, match="unknown purpose 'ai-trainig' \\(did you mean 'ai-training'\\?\\)"
    ):
        purpose_id("ai-trainig")
    with pytest.raises(UnknownPurposeError, match="known purposes: ai-training, ai-inference"):
        purpose_id("marketing")
    with pytest.raises(UnknownPurposeError, match="is not 32 bytes of hex"):
        purpose_id("0x1234")
    with pytest.raises(UnknownPurposeError, match="is not one of"):
        purpose_name(b"\x01" * 32)
    assert describe_purpose(b"\x01" * 32) == "0x" + "01" * 32
