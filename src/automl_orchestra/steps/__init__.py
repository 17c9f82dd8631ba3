"""The step model: kinds, references, validation, lineage, re-execution and caching."""
