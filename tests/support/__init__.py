"""Helpers the tests, benchmarks and CI share (not fixtures: those live in conftest.py)."""
