"""The `sov` command line: one module per command group."""
