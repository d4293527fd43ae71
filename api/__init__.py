"""The surfaces people use: the `sov` CLI and the FastAPI service."""
