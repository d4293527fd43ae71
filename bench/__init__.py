"""Benchmarks: each module's `run()` measures against a baseline in the same run and returns numbers."""
