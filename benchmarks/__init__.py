"""Benchmarks of AutoML Orchestra against the direct library call, measured in the same run.

Run ``python -m benchmarks [all|flaml|overhead|ingest] [--quick]``; see benchmarks/README.md.
"""
