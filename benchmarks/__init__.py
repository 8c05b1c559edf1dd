"""Benchmarks run by ``nox -s bench``; the latest figures live in docs/benchmarks.md."""
