"""Helpers for tests and benchmarks: tiny, randomly initialised models of the real architectures."""
