"""What a finished run produced (``OutputRef``), the file names inside an output folder, and plain JSON.

Shared by the API (which reads outputs), the runtime (which passes them in jobs) and the workers (which
write them); it imports nothing of the project.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

OutputKind = Literal["table", "array", "arrays", "object", "json", "file", "none"]

# File names inside a run's output folder, one convention for every engine.
TABLE_FILE = "data.parquet"
ARRAY_FILE = "data.npy"
ARRAYS_FILE = "data.npz"
JSON_FILE = "data.json"
OBJECT_FILE = "model.joblib"
SUMMARY_FILE = "summary.json"
# The folder of a code step's output that holds the files its code wrote (``builder/*``); the API serves them
# by the names the step's metadata lists (``files``), never by a path a request gives.
CODE_FILES_DIR = "files"
# How deep a JSON value a step produces (its output, metadata, metrics) may nest; deeper levels are cut and
# replaced by ``CUT`` so every listing and document can always be serialized (pydantic stops near 255).
MAX_OUTPUT_DEPTH = 64
CUT = f"<nested deeper than {MAX_OUTPUT_DEPTH} levels: cut>"


class OutputRef(BaseModel):
    """A run's output folder in the artifact store and how to read it back."""

    kind: OutputKind
    prefix: str = Field(description="artifact key of the run's output folder")
    files: list[str] = Field(default_factory=list)
    environment: str = "main"
    serializer: str = Field(default="builtin", description="engine whose loader reads an 'object' output")
    attributes: list[str] | None = Field(
        default=None, description="known keys/columns, used to validate '$step.attr' at POST time"
    )


def json_safe(value: Any, depth: int = 0) -> Any:
    """Plain, strict JSON: numpy values unwrapped, NaN/inf as null, dates as ISO text, the rest as repr,
    and nothing nested deeper than ``MAX_OUTPUT_DEPTH`` (cut to ``CUT``)."""
    if isinstance(value, dict | list | tuple | set) and depth >= MAX_OUTPUT_DEPTH:
        return CUT
    if isinstance(value, dict):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    for attr in ("item", "tolist"):  # numpy scalars and arrays
        if hasattr(value, attr):
            try:
                return json_safe(getattr(value, attr)(), depth)
            except (TypeError, ValueError):
                break
    return repr(value)
