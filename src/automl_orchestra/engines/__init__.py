"""Engines: the worker-side adapters, one folder per engine, and ``core`` (the adapter contract and what
every adapter shares). They import heavy ML libraries and are loaded by worker processes only; which tools
exist is in ``automl_orchestra.contracts.catalog``, which is light."""
