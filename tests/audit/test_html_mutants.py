"""The HTML page and lineage graph on in-memory lineages (no chain): reviewed renderings, edge cases."""

from __future__ import annotations

import pytest
from synthetic import DATASETS, VARIANTS, as_json, golden, lineage, report

from ledger.audit.html import _short, _svg


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_page_is_the_reviewed_one(variant: str) -> None:
    golden(f"page-{variant}.html", report(VARIANTS[variant]()).to_html())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_graph_is_the_reviewed_one(variant: str) -> None:
    golden(f"graph-{variant}.json", as_json(report(VARIANTS[variant]()).to_graph()))


def test_short_keeps_both_ends() -> None:
    # `keep` characters, then the last `keep - 2` (a 0x-prefixed value keeps as many digits at each end)
    assert _short("0x1234567890", 4) == "0x12…90"
    assert _short("abcdefg", 3) == "abcdefg"  # 2 * keep + 1 characters: kept whole
    assert _short("abcdefgh", 3) == "abc…h"


def test_graph_without_rounds_is_the_initial_model_only() -> None:
    lin = lineage(1)
    lin.rounds = []
    graph = report(lin).to_graph()
    assert [n["id"] for n in graph["nodes"]] == ["model:7:0"]
    svg = _svg(graph)
    assert 'width="890" height="100" viewBox="0 0 890 100"' in svg


def test_edges_to_unknown_nodes_are_not_drawn() -> None:
    graph = report(lineage(1)).to_graph()
    # first in the list: drawing goes on with the next edge
    graph["edges"].insert(0, {"source": "nowhere", "target": "round:7:1", "kind": "used", "revoked": True})
    graph["edges"].insert(0, {"source": "round:7:1", "target": "nowhere", "kind": "used", "revoked": True})
    assert _svg(graph).count('<path d="M ') == _svg(report(lineage(1)).to_graph()).count('<path d="M ')
    assert f"dataset:0x{DATASETS[0]:064x}" in _svg(graph)
