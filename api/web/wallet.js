// The owner's own wallet in the owner view: connect an EIP-1193 provider (window.ethereum) and
// register, grant, sign off-chain grants, revoke, retire and transfer with the owner's key. The
// page builds every transaction's calldata itself (SovCodec) and the wallet signs and sends it;
// the service only answers reads (/v1/web/config, the owner's datasets and grants).
"use strict";

(function () {
  const C = window.SovCodec;
  const $ = (sel) => document.querySelector(sel);
  const state = { config: null, account: null, datasets: [] };

  const SIGNATURES = {
    register: "register(bytes32,uint256,string)",
    retire: "retire(uint256)",
    transfer: "safeTransferFrom(address,address,uint256)",
    issueGrant: "issueGrant(uint256,address,bytes32,uint64,uint64,(uint16,uint8,uint8,uint16))",
    revokeGrant: "revokeGrant(uint256,address,bytes32)",
    nonces: "nonces(address)",
  };
  const GRANT_FIELDS = [
    ["datasetId", "uint256"], ["grantee", "address"], ["purpose", "bytes32"], ["notBefore", "uint64"],
    ["expiresAt", "uint64"], ["epsilonHundredths", "uint16"], ["deltaNegExponent", "uint8"],
    ["minParticipants", "uint8"], ["maxRounds", "uint16"], ["nonce", "uint256"], ["deadline", "uint256"],
  ].map(([name, type]) => ({ name, type }));
  const DOMAIN_FIELDS = [
    { name: "name", type: "string" }, { name: "version", type: "string" },
    { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" },
  ];
  // What a few reverts mean for the person at the wallet (the decoded error is always shown too).
  const REVERT_HINTS = {
    DatasetRegistryAlreadyRegistered: (a) => `this content is already registered, owned by ${a.owner}`,
    DatasetRegistryNotOwner: (a) => `your account ${a.caller} does not own it (the owner is ${a.owner})`,
    DatasetRegistryAlreadyRetired: () => "the dataset is already retired",
    UsageGrantsNotOwnerOrOperator: (a) => `your account ${a.caller} is neither the owner (${a.owner}) nor an operator`,
    UsageGrantsDatasetRetired: () => "the dataset is retired: it takes no new grants",
    UsageGrantsRevocationFinal: () => "this grant was revoked, and revocation is final",
    UsageGrantsInvalidWindow: () => "the grant's window is empty or already over",
    UsageGrantsUnknownDataset: () => "no such dataset is registered",
    ERC721InvalidReceiver: (a) => `${a.receiver} is a contract that does not accept ERC-721 deeds`,
  };

  class WalletError extends Error {
    constructor(code, message) { super(message); this.name = "WalletError"; this.code = code; }
  }

  // ---------------------------------------------------------------- messages

  function say(text, kind) {
    const box = $("#wallet-message");
    box.textContent = text;
    box.className = `message ${kind}`;
    box.dataset.state = kind;
    box.dataset.code = "";
    box.dataset.seq = String(Number(box.dataset.seq || 0) + 1);
  }

  function fail(error, action) {
    const code = error.code || "error";
    say(`${action} failed (${code}): ${error.message}`, "error");
    $("#wallet-message").dataset.code = code;
  }

  // ---------------------------------------------------------------- provider

  async function config() {
    if (!state.config) {
      const response = await fetch("/v1/web/config");
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const err = (body && body.error) || { code: `http_${response.status}`, message: response.statusText };
        throw new WalletError(err.code, `the service could not give its chain configuration: ${err.message}`);
      }
      state.config = body;
    }
    return state.config;
  }

  function provider() {
    const eth = window.ethereum;
    if (!eth || typeof eth.request !== "function") {
      throw new WalletError("no_wallet",
        "no wallet found in this browser (window.ethereum): install an Ethereum wallet (EIP-1193) and reload the page");
    }
    return eth;
  }

  function revertData(e) {
    for (const v of [e && e.data, e && e.data && e.data.data, e && e.data && e.data.originalError && e.data.originalError.data,
      e && e.error && e.error.data, e && e.info && e.info.error && e.info.error.data]) {
      if (typeof v === "string" && /^0x[0-9a-fA-F]{8}/.test(v)) return v;
    }
    return null;
  }

  function toWalletError(e, what) {
    if (e instanceof WalletError || e instanceof C.InputError) return e;
    const code = e && e.code;
    if (code === 4001) return new WalletError("user_rejected", `you rejected ${what} in your wallet; nothing was sent`);
    if (code === 4100) return new WalletError("wallet_unauthorized", "the wallet has not authorised this page: connect again");
    const data = revertData(e);
    if (data) return revertError(data, what);
    return new WalletError("wallet_error", `the wallet answered ${what} with: ${(e && e.message) || String(e)}`);
  }

  function revertError(data, what) {
    const decoded = C.decodeRevert(data, state.config ? state.config.errors : []);
    const hint = decoded && decoded.name && REVERT_HINTS[decoded.name] ? `: ${REVERT_HINTS[decoded.name](decoded.args)}` : "";
    const err = new WalletError("contract_revert", `the contract refused ${what} with ${decoded ? decoded.text : data}${hint}; nothing was sent`);
    err.revert = decoded;
    return err;
  }

  async function rpc(method, params, what) {
    const eth = provider();
    try {
      return await eth.request(params === undefined ? { method } : { method, params });
    } catch (e) {
      throw toWalletError(e, what || method);
    }
  }

  async function ensureChain() {
    const want = (await config()).chain_id;
    const have = Number(BigInt(await rpc("eth_chainId")));
    if (have === want) return;
    try {
      await rpc("wallet_switchEthereumChain", [{ chainId: "0x" + want.toString(16) }], "switching the chain");
    } catch (e) {
      if (e.code === "user_rejected") {
        throw new WalletError("wrong_chain", `your wallet is on chain ${have} but this service's contracts are on chain ${want}; you declined the switch: switch the wallet to chain ${want} and retry`);
      }
      throw new WalletError("wrong_chain", `your wallet is on chain ${have} but this service's contracts are on chain ${want}, and the wallet could not switch (${e.message}); add chain ${want} to the wallet and retry`);
    }
    const now = Number(BigInt(await rpc("eth_chainId")));
    if (now !== want) throw new WalletError("wrong_chain", `your wallet is still on chain ${now}; this service needs chain ${want}`);
  }

  function requireAccount() {
    if (!state.account) throw new WalletError("not_connected", "connect your wallet first");
    return state.account;
  }

  // A wallet tells the page when its user picks another account or chain: the page must never
  // keep acting for the previous account.
  function listen(eth) {
    if (state.listening || typeof eth.on !== "function") return;
    state.listening = true;
    eth.on("accountsChanged", async (accounts) => {
      state.account = null;
      $("#wallet-actions").hidden = true;
      $("#token-row").hidden = false;
      $("#wallet-connect").textContent = "Connect wallet";
      $("#wallet-status").textContent = "not connected";
      delete $("#wallet-status").dataset.account;
      // Redraw the tables without the wallet's buttons.
      await window.SovOwner.load($("#owner-address").value.trim());
      const next = Array.isArray(accounts) && accounts[0] ? ` to ${accounts[0]}` : "";
      say(`Your wallet switched accounts${next}: connect again to act for it.`, "info");
    });
    eth.on("chainChanged", (chainId) => {
      if (state.config && Number(BigInt(chainId)) !== state.config.chain_id && state.account) {
        say(`Your wallet moved to chain ${Number(BigInt(chainId))}; the next action will ask it to switch back to chain ${state.config.chain_id}.`, "info");
      }
    });
  }

  async function connect() {
    await config();
    listen(provider());
    const accounts = await rpc("eth_requestAccounts", undefined, "the connection request");
    if (!Array.isArray(accounts) || accounts.length === 0) throw new WalletError("no_account", "the wallet shared no account with this page");
    const account = C.parseAddress(accounts[0], "wallet account");
    await ensureChain();
    state.account = account;
    const service = state.config.service_account;
    const status = $("#wallet-status");
    status.textContent = `connected: ${state.account} on chain ${state.config.chain_id}`;
    status.dataset.account = state.account;
    $("#wallet-actions").hidden = false;
    $("#token-row").hidden = true;
    $("#wallet-connect").textContent = "Reconnect wallet";
    const note = service && service.toLowerCase() === state.account.toLowerCase()
      ? " (this is also the service's own account)" : "";
    $("#owner-address").value = state.account;
    await window.SovOwner.load(state.account);
    say(`Wallet connected: ${state.account}${note}. Transactions from this page are signed by your wallet.`, "ok");
  }

  async function latestBlock() {
    const block = await rpc("eth_getBlockByNumber", ["latest", false]);
    return { number: Number(BigInt(block.number)), timestamp: Number(BigInt(block.timestamp)) };
  }

  async function waitReceipt(hash) {
    const started = Date.now();
    for (;;) {
      const receipt = await rpc("eth_getTransactionReceipt", [hash]);
      if (receipt) return receipt;
      if (Date.now() - started > 180000) throw new WalletError("timeout", `transaction ${hash} was not mined within 3 minutes`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  function logTx(action, hash) {
    const item = document.createElement("li");
    item.className = "tx pending";
    item.dataset.action = action;
    item.dataset.txHash = hash;
    item.textContent = `${action}: ${hash} (pending)`;
    $("#wallet-log").appendChild(item);
    return item;
  }

  /** Simulate, then have the wallet sign and send; returns the mined receipt (status 1). */
  async function send(contract, signature, args, action) {
    const from = requireAccount();
    await ensureChain();
    const to = state.config.contracts[contract];
    const data = C.calldata(signature, args);
    // A call first: a revert is named before the wallet asks the owner to sign anything.
    await rpc("eth_call", [{ from, to, data }, "latest"], action);
    const hash = await rpc("eth_sendTransaction", [{ from, to, data }], action);
    const item = logTx(action, hash);
    const receipt = await waitReceipt(hash);
    const block = Number(BigInt(receipt.blockNumber));
    if (receipt.status !== "0x1") {
      item.className = "tx failed";
      item.textContent = `${action}: ${hash} reverted in block ${block}`;
      throw new WalletError("reverted_on_chain", `${action} was mined in block ${block} but reverted (tx ${hash})`);
    }
    item.className = "tx mined";
    item.dataset.block = String(block);
    item.textContent = `${action}: ${hash} (block ${block}, from ${from})`;
    return { hash, block };
  }

  async function refresh(block) {
    await window.SovOwner.load(state.account, block);
  }

  // ---------------------------------------------------------------- input parsing

  function datasetRef(text, field) {
    const value = String(text ?? "").trim();
    if (/^[0-9]+$/.test(value)) return BigInt(value);
    if (/^0x[0-9a-fA-F]{64}$/.test(value)) return BigInt(value);
    if (value.startsWith("b")) return BigInt(C.toHex(C.parseCid(value).digest));
    throw new C.InputError(`${field} ${JSON.stringify(value)} is not a dataset: expected its id (decimal), 0x content root (64 hex digits) or CID`);
  }

  const idHex = (id) => "0x" + BigInt(id).toString(16).padStart(64, "0");
  const short = (hex) => `${hex.slice(0, 10)}…${hex.slice(-6)}`;

  function intField(selector, name, max) {
    const text = $(selector).value.trim() || "0";
    if (!/^[0-9]+$/.test(text) || Number(text) > max) throw new C.InputError(`${name} ${JSON.stringify(text)}: expected an integer from 0 (none) to ${max}`);
    return Number(text);
  }

  /** The grant's terms in their on-chain encoding, checked as ledger's GrantTerms checks them. */
  function terms() {
    const epsText = $("#grant-epsilon").value.trim() || "0";
    const deltaText = $("#grant-delta").value.trim() || "0";
    const eps = Number(epsText), delta = Number(deltaText);
    if (!Number.isFinite(eps) || eps < 0 || eps > 655.35) throw new C.InputError(`epsilon ${JSON.stringify(epsText)}: expected 0 (no DP budget) or 0.01 to 655.35`);
    const hundredths = Math.round(eps * 100);
    if (Math.abs(hundredths / 100 - eps) > 1e-9) throw new C.InputError(`epsilon ${epsText} has more than two decimals (stored in hundredths)`);
    if (!Number.isFinite(delta) || delta < 0 || delta >= 1) throw new C.InputError(`delta ${JSON.stringify(deltaText)}: expected 0 (no DP budget) or a power of ten from 1e-1 to 1e-255`);
    let k = 0;
    if (delta > 0) {
      k = Math.round(-Math.log10(delta));
      if (Math.abs(10 ** -k - delta) > 1e-9 * delta || k < 1 || k > 255) throw new C.InputError(`delta ${deltaText} is not a power of ten (stored as 10^-k): use 1e-${Math.ceil(-Math.log10(delta))}`);
    }
    if ((hundredths === 0) !== (k === 0)) throw new C.InputError(`epsilon ${epsText} and delta ${deltaText}: set both for a DP budget, or neither`);
    return [hundredths, k, intField("#grant-min-participants", "minimum participants", 255), intField("#grant-max-rounds", "maximum rounds", 65535)];
  }

  function grantInputs() {
    const datasetText = $("#grant-dataset").value;
    if (!datasetText) throw new C.InputError("choose a dataset (register one first)");
    const datasetId = datasetRef(datasetText, "dataset");
    const grantee = C.parseAddress($("#grant-grantee").value, "grantee");
    const purpose = state.config.purposes.find((p) => p.name === $("#grant-purpose").value);
    if (!purpose) throw new C.InputError(`unknown purpose ${$("#grant-purpose").value}`);
    const days = Number($("#grant-days").value);
    if (!Number.isFinite(days) || days <= 0 || days > 36500) throw new C.InputError(`expiry ${JSON.stringify($("#grant-days").value)}: expected a number of days from more than 0 to 36500`);
    return { datasetId, grantee, purpose, days, terms: terms() };
  }

  // ---------------------------------------------------------------- confirmation

  function confirmDialog({ title, text, ok, input }) {
    const dialog = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok;
    $("#confirm-input-row").hidden = !input;
    $("#confirm-input").value = "";
    if (input) $("#confirm-input-label").textContent = input;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("#confirm-input").value : null), { once: true });
      dialog.showModal();
    });
  }

  // ---------------------------------------------------------------- actions

  async function guarded(action, fn) {
    const buttons = document.querySelectorAll("#wallet-actions button, .wallet-action");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await fn();
    } catch (e) {
      fail(toWalletError(e, action), action);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function computeCid() {
    const file = $("#register-file").files[0];
    if (!file) return;
    await guarded("hashing the file", async () => {
      say(`Hashing ${file.name} (${file.size} bytes) in this page; nothing is uploaded…`, "info");
      const cid = await C.cidOfBlob(file, { onProgress: (done) => { $("#register-progress").textContent = `${Math.round((100 * done) / Math.max(file.size, 1))}%`; } });
      $("#register-cid").value = cid;
      say(`CID of ${file.name}: ${cid} (computed in this page as \`sov cid\` does)`, "info");
    });
  }

  async function register() {
    await guarded("register", async () => {
      requireAccount();
      const cid = C.parseCid($("#register-cid").value);
      const parentText = $("#register-parent").value.trim();
      const parent = parentText ? datasetRef(parentText, "parent dataset") : 0n;
      const uri = $("#register-uri").value.trim();
      const root = C.toHex(cid.digest);
      const { hash, block } = await send("DatasetRegistry", SIGNATURES.register, [root, parent, uri], "register");
      await refresh(block);
      say(`Registered dataset ${short(root)} (CID ${cid.text}) to ${state.account} in block ${block} (tx ${hash}).`, "ok");
      $("#wallet-message").dataset.datasetId = BigInt(root).toString();
    });
  }

  async function issueGrant() {
    await guarded("issue grant", async () => {
      requireAccount();
      const g = grantInputs();
      const now = (await latestBlock()).timestamp;
      const expiresAt = now + Math.round(g.days * 86400);
      const { hash, block } = await send("UsageGrants", SIGNATURES.issueGrant,
        [g.datasetId, g.grantee, g.purpose.id, now, expiresAt, g.terms], "issue grant");
      await refresh(block);
      say(`Granted ${g.purpose.name} on dataset ${short(idHex(g.datasetId))} to ${g.grantee} until ${new Date(expiresAt * 1000).toISOString()} (terms ε=${g.terms[0] / 100}, δ=${g.terms[1] ? "1e-" + g.terms[1] : 0}, min participants ${g.terms[2]}, max rounds ${g.terms[3]}) in block ${block} (tx ${hash}).`, "ok");
    });
  }

  async function signGrant() {
    await guarded("sign grant", async () => {
      const owner = requireAccount();
      const g = grantInputs();
      const deadlineDays = Number($("#grant-deadline-days").value);
      if (!Number.isFinite(deadlineDays) || deadlineDays <= 0) throw new C.InputError(`signature deadline ${JSON.stringify($("#grant-deadline-days").value)}: expected a number of days above 0`);
      await ensureChain();
      const cfg = state.config;
      const answer = await rpc("eth_call", [{ to: cfg.contracts.UsageGrants, data: C.calldata(SIGNATURES.nonces, [owner]) }, "latest"], "reading your grant nonce");
      const nonce = C.decodeArgs(["uint256"], answer)[0];
      const now = (await latestBlock()).timestamp;
      const [eps, delta, minParticipants, maxRounds] = g.terms;
      // Exactly ledger.signed_grants.grant_typed_data: what `sov grant redeem` and the API accept.
      const typed = {
        types: { EIP712Domain: DOMAIN_FIELDS, Grant: GRANT_FIELDS },
        primaryType: "Grant",
        domain: { name: cfg.eip712.name, version: cfg.eip712.version, chainId: cfg.chain_id, verifyingContract: C.checksumAddress(cfg.contracts.UsageGrants) },
        message: {
          datasetId: g.datasetId.toString(), grantee: g.grantee, purpose: g.purpose.id, notBefore: now,
          expiresAt: now + Math.round(g.days * 86400), epsilonHundredths: eps, deltaNegExponent: delta,
          minParticipants, maxRounds, nonce: nonce.toString(), deadline: String(now + Math.round(deadlineDays * 86400)),
        },
      };
      const signature = await rpc("eth_signTypedData_v4", [owner, JSON.stringify(typed)], "the grant signature");
      const signed = { ...typed, signature };
      const text = JSON.stringify(signed, null, 2);
      $("#signed-grant-json").value = text;
      const link = $("#signed-grant-download");
      if (link.href && link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([text + "\n"], { type: "application/json" }));
      $("#signed-grant").hidden = false;
      say(`Signed an off-chain ${g.purpose.name} grant of dataset ${short(idHex(g.datasetId))} to ${g.grantee} (nonce ${nonce}); nothing was sent. Anyone can redeem it: sov grant redeem signed-grant.json`, "ok");
    });
  }

  async function revoke(grant) {
    await guarded("revoke", async () => {
      requireAccount();
      const answer = await confirmDialog({
        title: "Revoke this grant?",
        text: `Revoke the ${grant.purpose} grant of ${grant.grantee} on dataset ${short(idHex(grant.dataset_id))}. Revocation is final: no signature made before it can re-create the grant.`,
        ok: "Revoke",
      });
      if (answer === null) { say("Revoke cancelled; nothing was sent.", "info"); return; }
      const { hash, block } = await send("UsageGrants", SIGNATURES.revokeGrant, [BigInt(grant.dataset_id), grant.grantee, grant.purpose_id], "revoke");
      await refresh(block);
      say(`Revoked the ${grant.purpose} grant of ${grant.grantee} on dataset ${short(idHex(grant.dataset_id))} in block ${block} (tx ${hash}).`, "ok");
    });
  }

  async function retire(dataset) {
    await guarded("retire", async () => {
      requireAccount();
      const answer = await confirmDialog({
        title: "Retire this dataset?",
        text: `Retire dataset ${short(dataset.dataset_id_hex)} (consent withdrawn): every grant on it stops authorising from the next block. This cannot be undone.`,
        ok: "Retire",
      });
      if (answer === null) { say("Retire cancelled; nothing was sent.", "info"); return; }
      const { hash, block } = await send("DatasetRegistry", SIGNATURES.retire, [BigInt(dataset.dataset_id)], "retire");
      await refresh(block);
      say(`Retired dataset ${short(dataset.dataset_id_hex)} in block ${block} (tx ${hash}).`, "ok");
    });
  }

  async function transfer(dataset) {
    await guarded("transfer", async () => {
      const from = requireAccount();
      const answer = await confirmDialog({
        title: "Transfer this dataset's deed?",
        text: `Hand the deed of dataset ${short(dataset.dataset_id_hex)} to another account. You lose control of it, and the grants you issued on it stop authorising. This cannot be undone from this account.`,
        ok: "Transfer",
        input: "Recipient address",
      });
      if (answer === null) { say("Transfer cancelled; nothing was sent.", "info"); return; }
      const to = C.parseAddress(answer, "recipient");
      if (to.toLowerCase() === from.toLowerCase()) throw new C.InputError(`recipient ${to} is your own account`);
      const { hash, block } = await send("DatasetRegistry", SIGNATURES.transfer, [from, to, BigInt(dataset.dataset_id)], "transfer");
      await refresh(block);
      say(`Transferred dataset ${short(dataset.dataset_id_hex)} to ${to} in block ${block} (tx ${hash}).`, "ok");
    });
  }

  // ---------------------------------------------------------------- owner-view hooks (app.js)

  /** Whether the connected wallet is the owner whose view is shown (then actions go through it). */
  function actsFor(owner) {
    return Boolean(state.account && owner && state.account.toLowerCase() === String(owner).toLowerCase());
  }

  function button(label, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = `wallet-action ${cls}`;
    b.addEventListener("click", onClick);
    return b;
  }

  function datasetActions(dataset) {
    if (dataset.retired) return [];
    return [button("Retire", "wallet-retire danger", () => retire(dataset)), button("Transfer", "wallet-transfer", () => transfer(dataset))];
  }

  function grantActions(grant) {
    return [button("Revoke", "wallet-revoke danger", () => revoke(grant))];
  }

  function setDatasets(datasets) {
    const select = $("#grant-dataset");
    const keep = select.value;
    select.textContent = "";
    for (const ds of datasets.filter((d) => !d.retired)) {
      const option = document.createElement("option");
      option.value = ds.dataset_id;
      option.textContent = `${short(ds.dataset_id_hex)}${ds.uri ? " · " + ds.uri : ""}`;
      select.appendChild(option);
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  function start() {
    $("#wallet-connect").addEventListener("click", () => guarded("connect", connect));
    $("#register-file").addEventListener("change", computeCid);
    $("#register-form").addEventListener("submit", (ev) => { ev.preventDefault(); register(); });
    $("#grant-form").addEventListener("submit", (ev) => { ev.preventDefault(); issueGrant(); });
    $("#grant-sign").addEventListener("click", signGrant);
    config().then((cfg) => {
      const select = $("#grant-purpose");
      for (const p of cfg.purposes) {
        const option = document.createElement("option");
        option.value = p.name;
        option.textContent = p.name;
        select.appendChild(option);
      }
    }).catch(() => { /* shown when the owner connects */ });
  }

  window.SovWallet = { actsFor, datasetActions, grantActions, setDatasets };
  document.addEventListener("DOMContentLoaded", start);
})();
