"""``python -m benchmarks``: every benchmark; figures are kept in docs/benchmarks.md."""
