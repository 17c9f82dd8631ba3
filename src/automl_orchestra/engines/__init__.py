"""Engines: the light registry (``registry``, safe to import anywhere) and the worker-side adapters and
step implementations, which import heavy ML libraries and are loaded by worker processes only."""
