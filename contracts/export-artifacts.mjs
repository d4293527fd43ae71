// Copies the ABI and bytecode the Python side needs from Hardhat's build output into
// ledger/artifacts/, so `ledger` deploys and calls the contracts without Node at run time.
//
// Run after `hardhat compile`:  node contracts/export-artifacts.mjs
//
// Each file carries `sourceHash`: sha256 over every Solidity source under contracts/
// except the tests (contracts/test/, *.t.sol) plus hardhat.config.js (compiler settings change bytecode too), each entry
// as `<relative posix path>\0<content>\0`, in sorted path order. The Python test
// tests/contracts/test_artifacts_fresh.py recomputes it to detect stale artifacts.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Contracts the ledger deploys, the EIP-1271 wallet mocks its tests deploy, and the bench's bulk owner. */
const EXPORTS = [
  ["contracts/DatasetRegistry.sol", "DatasetRegistry"],
  ["contracts/UsageGrants.sol", "UsageGrants"],
  ["contracts/TrainingLedger.sol", "TrainingLedger"],
  ["contracts/mocks/MockWallets.sol", "MockSignerWallet"],
  ["contracts/mocks/MockWallets.sol", "MockRejectingWallet"],
  ["contracts/mocks/BulkDatasetOwner.sol", "BulkDatasetOwner"],
];

async function listSolidity(dir) {
  const found = [];
  for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (rel !== "contracts/test") found.push(...(await listSolidity(rel)));
    }
    else if (entry.name.endsWith(".sol") && !entry.name.endsWith(".t.sol")) found.push(rel);
  }
  return found;
}

async function sourceHash() {
  const files = [...(await listSolidity("contracts")), "hardhat.config.js"].sort();
  const hash = createHash("sha256");
  for (const rel of files) {
    hash.update(Buffer.from(`${rel}\0`, "utf8"));
    hash.update(await readFile(path.join(root, rel)));
    hash.update(Buffer.from("\0", "utf8"));
  }
  return hash.digest("hex");
}

const digest = await sourceHash();
const outDir = path.join(root, "ledger", "artifacts");
await mkdir(outDir, { recursive: true });
for (const [source, name] of EXPORTS) {
  const built = JSON.parse(await readFile(path.join(root, "artifacts", source, `${name}.json`), "utf8"));
  const artifact = {
    contractName: built.contractName,
    sourceName: source,
    abi: built.abi,
    bytecode: built.bytecode,
    deployedBytecode: built.deployedBytecode,
    sourceHash: digest,
  };
  await writeFile(path.join(outDir, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
  console.log(`wrote ledger/artifacts/${name}.json`);
}
