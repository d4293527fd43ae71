"""How many participants a round manifest may list: past the bitmask's 256 (large rounds), up to a bound."""

from __future__ import annotations

import json

import pytest
from test_provenance import manifest, nodes

from ledger.provenance import MAX_MANIFEST_PARTICIPANTS, ManifestError, RoundManifest


def _with_participants(count: int) -> bytes:
    document = json.loads(manifest(nodes(1)).to_bytes())
    template = document["participants"][0]
    document["participants"] = [{**template, "dataset_id": f"0x{i + 1:064x}"} for i in range(count)]
    return json.dumps(document).encode()


def test_a_large_round_manifest_lists_more_than_256_participants() -> None:
    parsed = RoundManifest.from_bytes(_with_participants(300))
    assert len(parsed.participants) == 300


def test_past_the_bound_a_manifest_is_refused_naming_it() -> None:
    assert MAX_MANIFEST_PARTICIPANTS == 100_000
    with pytest.raises(
        ManifestError,
        match="participants: List should have at most 100000 items after validation, not 100001",
    ):
        RoundManifest.from_bytes(_with_participants(MAX_MANIFEST_PARTICIPANTS + 1))
