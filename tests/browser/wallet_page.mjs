// Drives the owner view with a wallet injected into the page, as a browser extension would be:
// window.ethereum (EIP-1193) forwards every request to anvil, whose unlocked account signs
// (eth_sendTransaction, eth_signTypedData_v4 are anvil's own). The forwarding runs in Node
// (page.exposeFunction), outside the page's CSP, like an extension's background script.
// Usage: node wallet_page.mjs <plan.json>; prints a JSON report (test_wallet_page.py asserts on it).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { baseUrl, rpcUrl, owner } = plan;

let rpcId = 0;
async function anvil(method, params = []) {
  const response = await fetch(rpcUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  return response.json();
}
const blockNumber = async () => Number(BigInt((await anvil("eth_blockNumber")).result));

const report = { consoleErrors: [], externalRequests: [], walletCalls: [], steps: {} };
// Set by a step to make the wallet answer the next transaction as a user who clicked "Reject".
let rejectNext = false;
// The wallet starts on another chain (mainnet); the page must ask it to switch, and the user may decline.
let walletChain = "0x1";
let declineSwitch = true;

async function walletRequest(method, params) {
  report.walletCalls.push({ method, from: method === "eth_sendTransaction" ? params[0].from : undefined });
  if (method === "eth_requestAccounts" || method === "eth_accounts") return { result: [owner] };
  const anvilChain = (await anvil("eth_chainId")).result;
  if (method === "eth_chainId") return { result: walletChain };
  if (method === "wallet_switchEthereumChain") {
    if (declineSwitch) return { error: { code: 4001, message: "User rejected the request." } };
    if (BigInt(params[0].chainId) !== BigInt(anvilChain)) {
      return { error: { code: 4902, message: `Unrecognized chain ID ${params[0].chainId}` } };
    }
    walletChain = params[0].chainId;
    return { result: null };
  }
  if (method === "eth_sendTransaction" || method === "eth_signTypedData_v4") {
    if (BigInt(walletChain) !== BigInt(anvilChain)) {
      return { error: { code: 4901, message: `the wallet is on chain ${walletChain}` } };
    }
    if (rejectNext) {
      rejectNext = false;
      return { error: { code: 4001, message: "User rejected the request." } };
    }
    const from = method === "eth_sendTransaction" ? params[0].from : params[0];
    if (from.toLowerCase() !== owner.toLowerCase()) {
      return { error: { code: 4100, message: `account ${from} is not authorised for this page` } };
    }
  }
  const answer = await anvil(method, params);
  return answer.error ? { error: answer.error } : { result: answer.result };
}

const launchOptions = {
  executablePath: process.env.SOV_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
};
const profile = mkdtempSync(join(tmpdir(), "sov-chromium-"));
const browser = await chromium.launchPersistentContext(profile, launchOptions);

function watch(page) {
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("response", (res) => { if (res.status() >= 400) report.consoleErrors.push(`${res.status()} ${res.url()}`); });
  page.on("request", (req) => { if (!req.url().startsWith(baseUrl) && !req.url().startsWith("blob:")) report.externalRequests.push(req.url()); });
}

const snapshot = (page) => page.evaluate(() => {
  const m = document.querySelector("#wallet-message");
  return {
    message: m.textContent,
    state: m.dataset.state ?? null,
    code: m.dataset.code ?? null,
    walletStatus: document.querySelector("#wallet-status").textContent,
    datasets: [...document.querySelectorAll("#datasets-table tbody tr")].map((tr) => ({
      datasetId: tr.dataset.datasetId,
      state: tr.cells[3].textContent,
      actions: [...tr.querySelectorAll("button")].map((b) => b.textContent),
    })),
    grants: [...document.querySelectorAll("#grants-table tbody tr")].map((tr) => ({
      datasetId: tr.dataset.datasetId,
      grantee: tr.cells[1].title,
      purpose: tr.cells[2].textContent,
      status: tr.dataset.status,
      walletRevoke: tr.querySelector("button.wallet-revoke") !== null,
      tokenRevoke: tr.querySelector("button.revoke") !== null,
    })),
    log: [...document.querySelectorAll("#wallet-log li")].map((li) => ({
      action: li.dataset.action, hash: li.dataset.txHash, block: li.dataset.block ? Number(li.dataset.block) : null,
      state: li.className,
    })),
  };
});

// Run `fn` (clicks), wait for the page's next final message, record it with the chain height around it.
async function step(page, name, fn, { final = ["ok", "error"] } = {}) {
  const seq = Number(await page.getAttribute("#wallet-message", "data-seq"));
  const blockBefore = await blockNumber();
  await fn();
  await page.waitForFunction(([s, states]) => {
    const m = document.querySelector("#wallet-message");
    return Number(m.dataset.seq) > s && states.includes(m.dataset.state);
  }, [seq, final], { timeout: 120000 });
  report.steps[name] = { ...(await snapshot(page)), blockBefore, blockAfter: await blockNumber() };
  return report.steps[name];
}

async function confirm(page, { input, cancel = false } = {}) {
  await page.waitForSelector("#confirm-dialog[open]");
  report.dialogs = (report.dialogs || []).concat(await page.textContent("#confirm-text"));
  if (input !== undefined) await page.fill("#confirm-input", input);
  await page.click(cancel ? "#confirm-cancel" : "#confirm-ok");
}

async function fillGrant(page, g) {
  await page.selectOption("#grant-dataset", g.datasetId);
  await page.fill("#grant-grantee", g.grantee);
  await page.selectOption("#grant-purpose", g.purpose);
  await page.fill("#grant-days", String(g.days));
  await page.fill("#grant-epsilon", String(g.epsilon));
  await page.fill("#grant-delta", String(g.delta));
  await page.fill("#grant-min-participants", String(g.minParticipants));
  await page.fill("#grant-max-rounds", String(g.maxRounds));
}

try {
  // A browser without a wallet: the page says so and sends nothing.
  const bare = await browser.newPage();
  watch(bare);
  await bare.goto(baseUrl + "/");
  await step(bare, "noWallet", () => bare.click("#wallet-connect"));
  await bare.close();

  const page = await browser.newPage();
  watch(page);
  await page.exposeFunction("__sovWalletRequest", walletRequest);
  await page.addInitScript(() => {
    window.ethereum = {
      isSovTestWallet: true,
      async request({ method, params }) {
        const answer = await window.__sovWalletRequest(method, params ?? []);
        if (answer.error) {
          const error = new Error(answer.error.message);
          error.code = answer.error.code;
          error.data = answer.error.data;
          throw error;
        }
        return answer.result;
      },
      listeners: {},
      on(event, fn) { (this.listeners[event] ||= []).push(fn); },
      removeListener(event, fn) { this.listeners[event] = (this.listeners[event] || []).filter((f) => f !== fn); },
      emit(event, value) { for (const fn of this.listeners[event] || []) fn(value); },
    };
  });
  await page.goto(baseUrl + "/");
  await step(page, "wrongChainDeclined", () => page.click("#wallet-connect"));
  report.actionsHiddenOnWrongChain = await page.isHidden("#wallet-actions");
  declineSwitch = false;
  await step(page, "connect", () => page.click("#wallet-connect"));

  // Dataset A: a 600 kB file, hashed in the page (a dag-pb root over three raw leaves).
  const hashed = async (file) => {
    await page.setInputFiles("#register-file", file);
    await page.waitForFunction(() => document.querySelector("#wallet-message").textContent.startsWith("CID of"), null, { timeout: 60000 });
    return page.inputValue("#register-cid");
  };
  report.cidA = await hashed(plan.fileA);
  await page.fill("#register-uri", "name:ward-a");
  await step(page, "registerA", () => page.click("#register-submit"));
  // Dataset B: the CID pasted as `sov cid` printed it.
  await page.setInputFiles("#register-file", []);
  await page.fill("#register-cid", plan.cidB);
  await page.fill("#register-uri", "name:ward-b");
  await step(page, "registerB", () => page.click("#register-submit"));
  // Dataset C: a small file (one raw leaf).
  report.cidC = await hashed(plan.fileC);
  await page.fill("#register-uri", "name:ward-c");
  await step(page, "registerC", () => page.click("#register-submit"));

  await page.setInputFiles("#register-file", []);
  await page.fill("#register-cid", plan.badCid);
  await step(page, "malformedCid", () => page.click("#register-submit"));
  await page.fill("#register-cid", report.cidA);
  await step(page, "duplicate", () => page.click("#register-submit"));

  await fillGrant(page, plan.grant);
  await step(page, "grant", () => page.click("#grant-issue"));
  await page.fill("#grant-grantee", plan.badGrantee);
  await step(page, "malformedGrantee", () => page.click("#grant-issue"));
  await fillGrant(page, plan.rejectedGrant);
  rejectNext = true;
  await step(page, "rejected", () => page.click("#grant-issue"));

  await fillGrant(page, plan.signedGrant);
  await page.fill("#grant-deadline-days", "7");
  await step(page, "sign", () => page.click("#grant-sign"));
  report.signedGrant = await page.inputValue("#signed-grant-json");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#signed-grant-download")]);
  report.downloadName = download.suggestedFilename();
  report.downloadedGrant = readFileSync(await download.path(), "utf8");

  const revokeButton = "tr.status-authorized button.wallet-revoke";
  await step(page, "revokeCancelled", async () => { await page.click(revokeButton); await confirm(page, { cancel: true }); }, { final: ["info"] });
  await step(page, "revoke", async () => { await page.click(revokeButton); await confirm(page); });

  const row = (id) => `#datasets-table tr[data-dataset-id="${id}"]`;
  await step(page, "retire", async () => { await page.click(`${row(plan.datasetB)} button.wallet-retire`); await confirm(page); });
  await step(page, "badRecipient", async () => { await page.click(`${row(plan.datasetC)} button.wallet-transfer`); await confirm(page, { input: "0x1234" }); });
  await step(page, "transfer", async () => { await page.click(`${row(plan.datasetC)} button.wallet-transfer`); await confirm(page, { input: plan.recipient }); });
  await page.screenshot({ path: join(plan.shotDir, "owner-wallet-page.png"), fullPage: true });
  // The user picks another account in the wallet: the page stops acting for the owner.
  await step(page, "accountChanged", () => page.evaluate((next) => window.ethereum.emit("accountsChanged", [next]), plan.recipient), { final: ["info"] });
  report.actionsHiddenAfterSwitch = await page.isHidden("#wallet-actions");
  report.revokeButtonsAfterSwitch = await page.locator("button.wallet-action").count();
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report));
