// The service's page: owner view ("/") and audit view ("/audit/<cid>"). Talks only to this service's API.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);

  function shortHex(value, keep = 6) {
    const s = String(value);
    return s.length > 2 * keep + 3 ? `${s.slice(0, keep + 2)}…${s.slice(-keep)}` : s;
  }

  function fit(text, max) {
    const s = String(text ?? "");
    return s.length <= max ? s : `${s.slice(0, max - 13)}\u2026${s.slice(-12)}`;
  }

  function td(text, cls) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (cls) cell.className = cls;
    return cell;
  }

  async function api(path, options = {}) {
    const response = await fetch(path, options);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const err = body && body.error ? body.error : { code: "http_" + response.status, message: response.statusText };
      const e = new Error(err.message);
      e.code = err.code;
      e.status = response.status;
      throw e;
    }
    return body;
  }

  async function showHealth() {
    const badge = $("#health");
    try {
      const response = await fetch("/v1/health");
      const body = await response.json();
      badge.textContent = body.ok ? `chain ${body.chain_id} · ok` : "degraded";
      badge.className = "health " + (body.ok ? "ok" : "bad");
      badge.title = [body.chain, body.index, body.content_store].map((c) => `${c.url}: ${c.detail}`).join("\n");
    } catch (_) {
      badge.textContent = "service unreachable";
      badge.className = "health bad";
    }
  }

  // ---------------------------------------------------------------- owner view

  function formatLeft(seconds) {
    if (seconds <= 0) return "expired";
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = Math.floor(seconds % 60);
    return d > 0 ? `${d}d ${h}h ${m}m` : `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  }

  function tickCountdowns() {
    const now = Date.now() / 1000;
    for (const cell of document.querySelectorAll("[data-expires-at]")) {
      const left = Number(cell.dataset.expiresAt) - now;
      if (cell.dataset.inactive === "true") continue;
      cell.textContent = formatLeft(left);
      cell.classList.toggle("soon", left > 0 && left < 86400);
      cell.classList.toggle("over", left <= 0);
    }
  }

  async function revoke(grant, button) {
    const token = $("#api-token").value.trim();
    const message = $("#owner-message");
    if (!token) {
      message.textContent = "Paste the service's API token first.";
      message.className = "message error";
      return;
    }
    button.disabled = true;
    try {
      await api("/v1/grants/revoke", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ dataset_id: grant.dataset_id, grantee: grant.grantee, purpose: grant.purpose_id }),
      });
      message.textContent = `Revoked the ${grant.purpose} grant of ${grant.grantee} on dataset ${shortHex(grant.dataset_id)}.`;
      message.className = "message ok";
      await loadOwner($("#owner-address").value.trim());
    } catch (e) {
      message.textContent = `Revoke failed (${e.code}): ${e.message}`;
      message.className = "message error";
      button.disabled = false;
    }
  }

  // `minBlock`: a transaction the page just sent was mined there; wait until the service's event
  // index has seen it, so the tables show what the owner just did.
  async function loadOwner(owner, minBlock = 0) {
    const message = $("#owner-message");
    const dsBody = $("#datasets-table tbody");
    const grBody = $("#grants-table tbody");
    if (!owner) return;
    history.replaceState(null, "", `/?owner=${encodeURIComponent(owner)}`);
    const wallet = window.SovWallet && window.SovWallet.actsFor(owner) ? window.SovWallet : null;
    try {
      const q = encodeURIComponent(owner);
      let datasets, grants;
      for (let attempt = 0; ; attempt++) {
        [datasets, grants] = await Promise.all([
          api(`/v1/datasets?owner=${q}&limit=500`),
          api(`/v1/grants?owner=${q}&limit=500`),
        ]);
        const seen = Math.min(datasets.indexed_block ?? Infinity, grants.indexed_block ?? Infinity);
        if (seen >= minBlock || attempt >= 20) break;
        await new Promise((r) => setTimeout(r, 300));
      }
      if (wallet) wallet.setDatasets(datasets.items);
      dsBody.textContent = "";
      for (const ds of datasets.items) {
        const row = document.createElement("tr");
        row.dataset.datasetId = ds.dataset_id;
        row.append(td(shortHex(ds.dataset_id_hex, 8), "mono"), td(ds.uri || "—"), td(String(ds.epoch)),
          td(ds.retired ? "retired" : "active", ds.retired ? "state-bad" : "state-ok"), td(""));
        if (wallet) row.cells[4].append(...wallet.datasetActions(ds));
        row.cells[0].title = ds.dataset_id_hex;
        dsBody.appendChild(row);
      }
      $("#dataset-count").textContent = `(${datasets.total})`;
      grBody.textContent = "";
      for (const g of grants.items) {
        const row = document.createElement("tr");
        row.className = `grant status-${g.status}`;
        row.dataset.status = g.status;
        row.dataset.datasetId = g.dataset_id;
        const expires = new Date(g.expires_at * 1000);
        const left = td("", "countdown mono");
        left.dataset.expiresAt = String(g.expires_at);
        if (g.revoked) { left.dataset.inactive = "true"; left.textContent = "—"; }
        const action = document.createElement("td");
        if (!g.revoked && g.status !== "expired" && wallet) {
          action.append(...wallet.grantActions(g));
        } else if (!g.revoked && g.status !== "expired") {
          const button = document.createElement("button");
          button.textContent = "Revoke";
          button.className = "revoke";
          button.addEventListener("click", () => revoke(g, button));
          action.appendChild(button);
        }
        row.append(td(shortHex("0x" + BigInt(g.dataset_id).toString(16).padStart(64, "0"), 6), "mono"),
          td(shortHex(g.grantee), "mono"), td(g.purpose), td(expires.toISOString().replace(".000Z", "Z")),
          left, td(g.status.replace(/_/g, " "), g.authorized ? "state-ok" : "state-bad"), action);
        row.cells[1].title = g.grantee;
        grBody.appendChild(row);
      }
      $("#grant-count").textContent = `(${grants.total})`;
      if (message.className.indexOf("ok") < 0) { message.textContent = ""; message.className = "message"; }
      tickCountdowns();
      document.body.dataset.ready = "owner";
    } catch (e) {
      message.textContent = `Could not load ${owner}: ${e.message}`;
      message.className = "message error";
      document.body.dataset.ready = "error";
    }
  }

  window.SovOwner = { load: loadOwner };

  function ownerView() {
    $("#owner-view").hidden = false;
    const params = new URLSearchParams(location.search);
    const owner = params.get("owner") || "";
    $("#owner-address").value = owner;
    $("#owner-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      $("#owner-message").className = "message";
      loadOwner($("#owner-address").value.trim());
    });
    setInterval(tickCountdowns, 1000);
    if (owner) loadOwner(owner);
  }

  // ---------------------------------------------------------------- audit view

  async function auditView(cid) {
    $("#audit-view").hidden = false;
    $("#audit-title").textContent = cid;
    document.title = `audit ${shortHex(cid, 8)} · sovereign-ledger`;
    const base = `/v1/audit/models/${encodeURIComponent(cid)}`;
    $("#export-json").href = base;
    $("#export-prov").href = `${base}?format=prov`;
    $("#export-html").href = `${base}?format=html`;
    const summary = $("#audit-summary");
    summary.textContent = "Verifying the lineage against the chain and the content store…";
    try {
      const lineage = await api(`${base}/lineage`);
      summary.textContent = lineage.summary;
      summary.className = "summary " + (lineage.verified ? "ok" : "bad");
      summary.dataset.verified = String(lineage.verified);
      window.SovLineage.render($("#lineage"), lineage);
      const body = $("#checks-table tbody");
      body.textContent = "";
      const failed = lineage.checks.filter((c) => !c.ok).length;
      $("#checks-summary").textContent = failed
        ? `${lineage.checks.length} checks: ${failed} FAILED (failures first)`
        : `${lineage.checks.length} checks, all passed (show)`;
      // Open the list when something failed: that is what the auditor came for.
      $("#checks").open = failed > 0;
      const ordered = [...lineage.checks].sort((a, b) => Number(a.ok) - Number(b.ok));
      for (const c of ordered) {
        const row = document.createElement("tr");
        row.className = c.ok ? "check-ok" : "check-bad";
        row.append(td(c.name), td(fit(c.subject, 60), "mono"), td(c.ok ? "pass" : "FAIL", c.ok ? "state-ok" : "state-bad"), td(c.detail || ""));
        body.appendChild(row);
      }
      document.body.dataset.ready = "true";
    } catch (e) {
      summary.textContent = `Audit failed (${e.code}): ${e.message}`;
      summary.className = "summary bad";
      document.body.dataset.ready = "error";
    }
  }

  function start() {
    $("#audit-jump").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const cid = $("#audit-cid").value.trim();
      if (cid) location.href = `/audit/${encodeURIComponent(cid)}`;
    });
    showHealth();
    const match = location.pathname.match(/^\/audit\/([^/]+)$/);
    if (match) auditView(decodeURIComponent(match[1]));
    else ownerView();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
