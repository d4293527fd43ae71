// Drives the service's web page in headless Chromium and reports what it shows, as JSON on stdout.
// Usage: node pages.mjs <base-url> <model-cid> <owner-address> <screenshot-dir> [api-token]
// With a token, the owner view's first active grant is revoked through the page's Revoke button.
// The pytest side (test_browser_pages.py) starts the service against a devnet and asserts on this report.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [baseUrl, cid, owner, shotDir, token] = process.argv.slice(2);
if (!baseUrl || !cid || !owner || !shotDir) {
  console.error("usage: node pages.mjs <base-url> <model-cid> <owner-address> <screenshot-dir>");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "sov-chromium-"));
// A fresh profile directory per run (playwright passes it to Chromium as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.SOV_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
const report = { consoleErrors: [], externalRequests: [] };
try {
  const page = await browser.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("response", (res) => { if (res.status() >= 400) report.consoleErrors.push(`${res.status()} ${res.url()}`); });
  page.on("request", (req) => { if (!req.url().startsWith(baseUrl)) report.externalRequests.push(req.url()); });

  // Audit view: the lineage graph of the model.
  await page.goto(`${baseUrl}/audit/${cid}`);
  await page.waitForSelector("body[data-ready]", { timeout: 60000 });
  report.audit = await page.evaluate(() => ({
    ready: document.body.dataset.ready,
    summary: document.querySelector("#audit-summary").textContent,
    verified: document.querySelector("#audit-summary").dataset.verified ?? null,
    nodes: [...document.querySelectorAll("#lineage svg g.node")].map((g) => ({
      id: g.dataset.id, kind: g.dataset.kind, status: g.dataset.status, revoked: g.dataset.revoked === "true",
      round: g.dataset.round ? Number(g.dataset.round) : null,
      text: [...g.querySelectorAll("text")].map((t) => t.textContent),
      fill: getComputedStyle(g.querySelector("rect.node-box")).fill,
    })),
    edges: [...document.querySelectorAll("#lineage svg path.edge")].map((p) => ({
      source: p.dataset.source, target: p.dataset.target, revoked: p.classList.contains("edge-revoked"),
    })),
    checks: document.querySelectorAll("#checks-table tbody tr").length,
  }));
  await page.screenshot({ path: join(shotDir, "audit-page.png"), fullPage: true });

  // Owner view: datasets and grants of the owner, with countdowns and revoke buttons.
  await page.goto(`${baseUrl}/?owner=${owner}`);
  await page.waitForSelector("body[data-ready]", { timeout: 60000 });
  await page.waitForTimeout(1100); // one countdown tick
  const ownerState = () => page.evaluate(() => ({
    ready: document.body.dataset.ready,
    message: document.querySelector("#owner-message").textContent,
    datasets: document.querySelectorAll("#datasets-table tbody tr").length,
    grants: [...document.querySelectorAll("#grants-table tbody tr")].map((tr) => ({
      status: tr.dataset.status,
      datasetId: tr.dataset.datasetId,
      purpose: tr.cells[2].textContent,
      countdown: tr.querySelector(".countdown").textContent,
      revokeButton: tr.querySelector("button.revoke") !== null,
    })),
  }));
  report.owner = await ownerState();
  await page.screenshot({ path: join(shotDir, "owner-page.png"), fullPage: true });
  if (token) {
    await page.fill("#api-token", token);
    await page.evaluate(() => { delete document.body.dataset.ready; });
    await page.click("tr.status-authorized button.revoke");
    await page.waitForSelector("#owner-message.ok", { timeout: 60000 });
    await page.waitForSelector("body[data-ready]", { timeout: 60000 });
    report.ownerAfterRevoke = await ownerState();
    await page.screenshot({ path: join(shotDir, "owner-page-after-revoke.png"), fullPage: true });
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report));
