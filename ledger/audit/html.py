"""Self-contained HTML page of an audit: summary, inline-SVG lineage graph and the checks.

The page has no script and loads nothing: styles are inline, the graph is SVG drawn here.
Layout: three columns (datasets -> rounds -> model versions), one line per round, so a
200-round job grows downwards instead of off the side of the page. Each node is coloured
by its verification status (green verified, red failed, grey not verifiable or not
checked); edges of a dataset usage whose
grant or attestation check failed are red.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from ledger.purposes import describe_purpose

if TYPE_CHECKING:
    from ledger.audit.report import AuditReport

NODE_W = 230
NODE_H = 40
ROW_H = 56
COL_X = (20, 330, 640)
COLUMN_TITLES = tuple(zip(COL_X, ("datasets", "rounds", "model versions"), strict=True))
TOP = 40
COLOURS = {
    "verified": ("#dcfce7", "#15803d"),
    "failed": ("#fee2e2", "#b91c1c"),
    "unchecked": ("#f3f4f6", "#6b7280"),
}


def _short(text: str, keep: int) -> str:
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep + 2 :]}"


def lineage_graph(report: AuditReport) -> dict[str, Any]:
    """Nodes (`dataset`, `round`, `model`) and edges with a verification status each.

    Same shape the web page's lineage view draws: `{summary, verified, checks, nodes, edges}`.
    """
    lin = report.lineage
    job = lin.job
    failed_rounds = {c.round for c in report.failures if c.round is not None}
    failed_pairs = {(c.round, c.dataset_id) for c in report.failures if c.dataset_id is not None}
    unchecked_rounds = {c.round for c in report.unverified if c.round is not None}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    used: set[int] = set()
    for facts in lin.rounds:
        used.update(p.dataset_id for p in facts.participants)
    failed_datasets = {d for _, d in failed_pairs}
    for dataset_id in sorted(used):
        record = lin.datasets.get(dataset_id)
        nodes.append(
            {
                "id": f"dataset:0x{dataset_id:064x}",
                "kind": "dataset",
                "label": f"dataset {_short(f'0x{dataset_id:064x}', 8)}",
                "detail": (record.uri if record is not None else "not registered"),
                "status": "failed" if dataset_id in failed_datasets or record is None else "verified",
                "revoked": bool(record is not None and record.retired),
            }
        )
    nodes.append(
        {
            "id": f"model:{job.job_id}:0",
            "kind": "model",
            "round": 0,
            "label": "initial model",
            "detail": _short("0x" + job.initial_model_digest.hex(), 8),
            "status": "verified",
            "revoked": False,
        }
    )
    for facts in lin.rounds:
        c = facts.committed
        status = (
            "failed"
            if c.round in failed_rounds
            else "unchecked"
            if c.round in unchecked_rounds
            else "verified"
        )
        round_id = f"round:{job.job_id}:{c.round}"
        nodes.append(
            {
                "id": round_id,
                "kind": "round",
                "round": c.round,
                "label": f"round {c.round}",
                "detail": f"block {c.block_number}, {len(facts.participants)} participant(s)",
                "status": status,
                "revoked": False,
            }
        )
        nodes.append(
            {
                "id": f"model:{job.job_id}:{c.round}",
                "kind": "model",
                "round": c.round,
                "label": f"model v{c.round}",
                "detail": facts.model_cid or _short("0x" + c.model_digest.hex(), 8),
                "status": status,
                "revoked": False,
            }
        )
        edges.append(
            {
                "source": f"model:{job.job_id}:{c.round - 1}",
                "target": round_id,
                "kind": "base",
                "revoked": False,
            }
        )
        edges.append(
            {
                "source": round_id,
                "target": f"model:{job.job_id}:{c.round}",
                "kind": "generated",
                "revoked": False,
            }
        )
        for p in facts.participants:
            bad = (c.round, p.dataset_id) in failed_pairs
            edges.append(
                {
                    "source": f"dataset:0x{p.dataset_id:064x}",
                    "target": round_id,
                    "kind": "used",
                    "revoked": bad,
                    "status": "failed" if bad else "verified",
                }
            )
    return {
        "summary": report.summary(),
        "verified": report.ok,
        "checks": [
            {"name": c.name, "subject": c.subject, "ok": c.ok, "detail": c.message} for c in report.checks
        ],
        "nodes": nodes,
        "edges": edges,
    }


def _svg(graph: dict[str, Any]) -> str:
    pos: dict[str, tuple[int, int]] = {}
    datasets = [n for n in graph["nodes"] if n["kind"] == "dataset"]
    for i, node in enumerate(datasets):
        pos[node["id"]] = (COL_X[0], TOP + ROW_H * (i + 1))
    for node in graph["nodes"]:
        if node["kind"] == "round":
            pos[node["id"]] = (COL_X[1], TOP + ROW_H * node["round"])
        elif node["kind"] == "model":
            pos[node["id"]] = (COL_X[2], TOP + ROW_H * node["round"])
    rows = max([y for _, y in pos.values()] + [TOP])
    height = rows + NODE_H + 20
    width = COL_X[2] + NODE_W + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="lineage graph: datasets, rounds and model versions">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker>'
        '<marker id="arrow-bad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#b91c1c"/></marker></defs>',
    ]
    for x, title in COLUMN_TITLES:
        out.append(f'<text x="{x}" y="20" font-weight="bold" font-size="14">{title}</text>')
    for edge in graph["edges"]:
        a, b = pos.get(edge["source"]), pos.get(edge["target"])
        if a is None or b is None:
            continue
        bad = edge["revoked"]
        colour = "#b91c1c" if bad else "#9ca3af"
        if edge["kind"] == "base":
            # base model (right column) back into the next round (middle column)
            x1, y1, x2, y2 = a[0], a[1] + NODE_H // 2, b[0] + NODE_W, b[1] + NODE_H // 2
        else:
            x1, y1, x2, y2 = a[0] + NODE_W, a[1] + NODE_H // 2, b[0], b[1] + NODE_H // 2
        mid = (x1 + x2) // 2
        out.append(
            f'<path d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}" fill="none" stroke="{colour}" '
            f'stroke-width="{2 if bad else 1}" marker-end="url(#{"arrow-bad" if bad else "arrow"})" '
            f'data-source="{escape(edge["source"])}" data-target="{escape(edge["target"])}"/>'
        )
    for node in graph["nodes"]:
        x, y = pos[node["id"]]
        fill, stroke = COLOURS.get(node["status"], COLOURS["unchecked"])
        mark = {"verified": "✓", "unchecked": "?"}.get(node["status"], "✗")
        out.append(
            f'<g class="node node-{node["kind"]} status-{node["status"]}" data-id="{escape(node["id"])}" '
            f'data-status="{node["status"]}" transform="translate({x},{y})">'
            f"<title>{escape(node['label'])}\n{escape(str(node['detail']))}\n{node['status']}</title>"
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            '<text x="8" y="16" font-size="12" font-weight="bold" '
            f'fill="{stroke}">{mark} {escape(node["label"])}</text>'
            '<text x="8" y="32" font-size="10" '
            f'fill="#374151">{escape(_short(str(node["detail"]), 17))}</text>'
            "</g>"
        )
    out.append("</svg>")
    return "".join(out)


def report_to_html(report: AuditReport) -> str:
    """The complete page (UTF-8 text)."""
    graph = lineage_graph(report)
    lin = report.lineage
    job = lin.job
    verdict_colour = "#15803d" if report.ok else "#6b7280" if not report.failures else "#b91c1c"
    rows = []
    for check in report.checks:
        colour = "#15803d" if check.ok else "#6b7280" if check.unverified else "#b91c1c"
        rows.append(
            f'<tr class="check-{check.status}"><td>{escape(check.name)}</td>'
            f"<td>{'' if check.round is None else check.round}</td>"
            f'<td style="color:{colour};font-weight:bold">{check.status.upper()}</td>'
            f"<td>{escape(check.message)}</td></tr>"
        )
    facts = [
        ("target", f"{lin.target.kind} {lin.target.text}"),
        ("job", f"{job.job_id} (created at block {job.block_number}, tx {job.tx_hash})"),
        ("coordinator", job.coordinator),
        ("purpose", describe_purpose(job.purpose)),
        ("chain", f"{lin.chain_id} via {lin.rpc_url}; TrainingLedger {lin.training_ledger}"),
        (
            "facts read at",
            f"block {lin.head_block} (the chain's logs and views; the local index only compared)",
        ),
        ("index", f"synced to block {lin.synced_block}"),
        ("historical state", lin.chain_history_note or "not read"),
    ]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    budget_rows = "".join(
        f'<tr data-dataset="0x{b.dataset_id:064x}"><td>0x{b.dataset_id:064x}</td><td>{b.private_rounds}</td>'
        f"<td>{b.epsilon_spent:.6f}</td>"
        f"<td>{'?' if b.epsilon_budget is None else f'{b.epsilon_budget:g}'}</td>"
        f"<td>{'?' if b.delta is None else f'{b.delta:g}'}</td>"
        f"<td>{'-' if b.epsilon_left is None else f'{b.epsilon_left:.6f}'}</td></tr>"
        for b in report.privacy_budgets()
    )
    privacy = (
        '<h2>Privacy budget</h2><table id="privacy"><thead><tr><th>dataset</th><th>DP rounds</th>'
        "<th>epsilon spent</th><th>budget</th><th>delta</th><th>left</th></tr></thead>"
        f"<tbody>{budget_rows}</tbody></table>"
        if budget_rows
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>audit of {escape(lin.target.text)} — {report.verdict_label}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111827}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #e5e7eb;padding:4px 8px;"
        "text-align:left;vertical-align:top;font-size:13px}th{background:#f9fafb}"
        ".verdict{font-size:1.2em;font-weight:bold}svg{border:1px solid #e5e7eb;background:#fff}</style>"
        "</head><body>"
        f'<h1>Provenance audit</h1><p class="verdict" id="verdict" data-verified="{str(report.ok).lower()}" '
        f'data-verdict="{report.verdict}" '
        f'style="color:{verdict_colour}">{escape(report.summary())}</p>'
        f"<table>{fact_rows}</table>"
        f'<h2>Lineage</h2><div id="lineage">{_svg(graph)}</div>'
        f"{privacy}"
        f'<h2>Checks</h2><table id="checks"><thead><tr><th>check</th><th>round</th><th>status</th>'
        f"<th>message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )
