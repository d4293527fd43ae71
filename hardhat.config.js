// Hardhat 3 configuration for the sovereign-ledger contracts.
//
// The compiler is pinned to the solcjs build shipped in node_modules (npm `solc`
// 0.8.28): Hardhat would otherwise try to download its compiler list, and this project
// builds offline. The path is derived from this file's location so a clone anywhere works.
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));

/** @type {import("hardhat/config").HardhatUserConfig} */
export default {
  solidity: {
    version: "0.8.28",
    path: path.join(root, "node_modules", "solc", "soljson.js"),
    settings: {
      // Transaction gas is what users pay per grant and per round: optimise for runtime.
      // (The IR pipeline was tried: ~1% less gas, 5x slower solcjs builds; not worth it.)
      optimizer: { enabled: true, runs: 1000000 },
      evmVersion: "cancun",
    },
  },
  paths: {
    sources: "contracts",
    tests: { solidity: "contracts/test" },
  },
  test: {
    solidity: {
      fuzz: { runs: 256 },
      invariant: { runs: 64, depth: 32, failOnRevert: false },
    },
  },
};
