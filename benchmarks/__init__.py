"""Benchmarks: each module measures one thing and prints its figures (BENCHMARKS.md holds the last ones)."""
