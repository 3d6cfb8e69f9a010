"""Runnable benchmarks, one per question: ``python -m benchmarks.<name> [--json PATH]``."""
