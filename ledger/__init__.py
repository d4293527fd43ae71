"""Chain client, deployment, event index, content store and audit of sovereign-ledger.

`ledger` imports neither `fl_node` nor `api`: the audit reads provenance records without
any federated-learning code.
"""
