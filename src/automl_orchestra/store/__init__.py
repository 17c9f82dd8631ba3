"""Persistence: metadata in a SQL database, artifacts on fsspec storage."""
