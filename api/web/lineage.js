// Lineage graph of a model: datasets (top row) -> rounds (middle row) -> model versions (bottom row),
// drawn as inline SVG with a small layered layout of our own (no external library).
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_W = 220;
  const NODE_H = 58;
  const GAP_X = 28;
  const ROW_GAP = 86;
  const PAD = 24;
  const ROWS = { dataset: 0, round: 1, model: 2 };
  const ROW_TITLES = ["datasets", "rounds", "model versions"];
  const STATUSES = new Set(["verified", "failed", "unchecked"]);

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Order within a row: rounds and models by round number; datasets by the mean position of the
  // rounds they took part in (barycentre), so edges cross as little as a single pass can manage.
  function layout(graph) {
    const rows = [[], [], []];
    for (const node of graph.nodes) rows[ROWS[node.kind] ?? 0].push(node);
    const byRound = (a, b) => (a.round ?? 0) - (b.round ?? 0) || String(a.id).localeCompare(String(b.id));
    rows[1].sort(byRound);
    rows[2].sort(byRound);
    const slot = new Map();
    rows[1].forEach((n, i) => slot.set(n.id, i));
    const bary = (node) => {
      const xs = graph.edges.filter((e) => e.source === node.id && slot.has(e.target)).map((e) => slot.get(e.target));
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.MAX_SAFE_INTEGER;
    };
    rows[0].sort((a, b) => bary(a) - bary(b) || String(a.label).localeCompare(String(b.label)));
    const widest = Math.max(1, ...rows.map((r) => r.length));
    const totalW = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
    const pos = new Map();
    rows.forEach((row, r) => {
      const rowW = row.length * NODE_W + Math.max(0, row.length - 1) * GAP_X;
      const x0 = (totalW - rowW) / 2;
      row.forEach((node, i) => {
        pos.set(node.id, { x: x0 + i * (NODE_W + GAP_X), y: PAD + 18 + r * (NODE_H + ROW_GAP) });
      });
    });
    return { pos, width: totalW, height: PAD * 2 + 18 + 3 * NODE_H + 2 * ROW_GAP };
  }

  // Node text is clipped to what fits the box; the full text is in the node's <title> tooltip.
  function fit(text, max) {
    const s = String(text ?? "");
    return s.length <= max ? s : `${s.slice(0, Math.ceil(max / 2) - 1)}\u2026${s.slice(-(Math.floor(max / 2) - 1))}`;
  }

  function statusText(node) {
    if (node.status === "verified") return "\u2713 verified";
    if (node.status === "failed") return "\u2717 failed";
    return "\u2013 not checked";
  }

  function render(container, graph) {
    container.textContent = "";
    if (!graph.nodes.length) {
      container.textContent = "No lineage to draw.";
      return;
    }
    const { pos, width, height } = layout(graph);
    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": "lineage graph: datasets, rounds and model versions",
    });
    const defs = el("defs");
    for (const [id, colour] of [["arrow", "#6b7280"], ["arrow-revoked", "#b91c1c"]]) {
      const marker = el("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour }));
      defs.appendChild(marker);
    }
    svg.appendChild(defs);
    ROW_TITLES.forEach((title, r) => {
      svg.appendChild(el("text", { x: PAD, y: PAD + 10 + r * (NODE_H + ROW_GAP), class: "row-title" }, title));
    });
    const edges = el("g", { class: "edges" });
    for (const edge of graph.edges) {
      const a = pos.get(edge.source);
      const b = pos.get(edge.target);
      if (!a || !b) continue;
      const sameRow = a.y === b.y;
      const x1 = a.x + (sameRow ? NODE_W : NODE_W / 2);
      const y1 = a.y + (sameRow ? NODE_H / 2 : NODE_H);
      const x2 = b.x + (sameRow ? 0 : NODE_W / 2);
      const y2 = b.y + (sameRow ? NODE_H / 2 : 0);
      const my = (y1 + y2) / 2;
      const d = sameRow ? `M ${x1} ${y1} L ${x2} ${y2}` : `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`;
      edges.appendChild(el("path", {
        d, class: "edge" + (edge.revoked ? " edge-revoked" : ""),
        "marker-end": edge.revoked ? "url(#arrow-revoked)" : "url(#arrow)",
        "data-source": edge.source, "data-target": edge.target,
      }));
    }
    svg.appendChild(edges);
    for (const node of graph.nodes) {
      const p = pos.get(node.id);
      const g = el("g", {
        class: `node node-${node.kind} status-${STATUSES.has(node.status) ? node.status : "unchecked"}` + (node.revoked ? " revoked" : ""),
        transform: `translate(${p.x}, ${p.y})`,
        "data-id": node.id, "data-kind": node.kind, "data-status": node.status,
        "data-revoked": node.revoked ? "true" : "false",
      });
      if (node.round !== undefined && node.round !== null) g.setAttribute("data-round", String(node.round));
      const revokedNote = node.revoked ? (node.revoked_block ? `grant revoked at block ${node.revoked_block}` : "revoked / retired") : "";
      const title = el("title", {}, [node.label, node.detail, statusText(node), revokedNote].filter(Boolean).join("\n"));
      g.appendChild(title);
      g.appendChild(el("rect", { width: NODE_W, height: NODE_H, rx: 8, ry: 8, class: "node-box" }));
      g.appendChild(el("text", { x: 10, y: 19, class: "node-label" }, fit(node.label, 28)));
      if (node.detail) g.appendChild(el("text", { x: 10, y: 34, class: "node-detail" }, fit(node.detail, 31)));
      g.appendChild(el("text", { x: 10, y: 50, class: "node-status" }, statusText(node)));
      if (node.revoked) {
        g.appendChild(el("rect", { x: NODE_W - 78, y: NODE_H - 20, width: 70, height: 15, rx: 3, class: "badge-revoked" }));
        g.appendChild(el("text", { x: NODE_W - 43, y: NODE_H - 9, class: "badge-text", "text-anchor": "middle" }, "REVOKED"));
      }
      svg.appendChild(g);
    }
    container.appendChild(svg);
  }

  window.SovLineage = { render, layout };
})();
