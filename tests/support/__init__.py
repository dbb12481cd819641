"""Helpers shared by the integration tests, the examples' tests and the benchmarks."""
