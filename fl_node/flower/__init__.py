"""The Flower engine: the same on-chain gate, attestation, anchoring and commit under Flower.

- `mod.ledger_gate_mod`: a ClientApp mod that refuses a round the chain does not allow and
  signs an EIP-712 attestation of the update the wrapped ClientApp produced.
- `strategy.LedgerStrategy`: a Strategy wrapper (around FedAvg's client selection) that
  verifies the attestations, aggregates, anchors model and round manifest in the content
  store and commits the round on-chain, recomputing without a dataset whose grant ended.
- `app`: the ServerApp and ClientApp the deployment engine loads (`project/pyproject.toml`).
- `federation.LocalFederation`: a SuperLink and SuperNodes on 127.0.0.1, for tests and demos.
"""
