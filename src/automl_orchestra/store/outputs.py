"""What a finished run produced (``OutputRef``) and how the API reads a page of it without loading it all."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from automl_orchestra.store.artifacts import ArtifactStore

OutputKind = Literal["table", "array", "arrays", "object", "json", "file", "none"]

# File names inside a run's output folder, one convention for every engine.
TABLE_FILE = "data.parquet"
ARRAY_FILE = "data.npy"
ARRAYS_FILE = "data.npz"
JSON_FILE = "data.json"
OBJECT_FILE = "model.joblib"
SUMMARY_FILE = "summary.json"


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


def read_table_page(
    store: ArtifactStore, ref: OutputRef, skip: int, limit: int, query: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows ``skip .. skip+limit`` of a Parquet table, reading one row group at a time.

    Memory is bounded by a row group (plus the page), not by the dataset: row groups before the page are
    skipped from the file footer's row counts unless a filter needs their contents.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    with store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
        parquet = pq.ParquetFile(handle)
        to_skip = skip
        for index in range(parquet.num_row_groups):
            if len(rows) >= limit:
                break
            group_rows = parquet.metadata.row_group(index).num_rows
            if not query and to_skip >= group_rows:
                to_skip -= group_rows
                continue
            table = parquet.read_row_group(index)
            if query:
                mask = None
                for column, wanted in query.items():
                    cond = pc.equal(table[column], wanted) if wanted is not None else pc.is_null(table[column])
                    mask = cond if mask is None else pc.and_(mask, cond)
                table = table.filter(mask)
            if to_skip >= table.num_rows:
                to_skip -= table.num_rows
                continue
            table = table.slice(to_skip, limit - len(rows))
            to_skip = 0
            rows.extend(table.to_pylist())
    return [_jsonable_row(row) for row in rows]


def table_schema(store: ArtifactStore, ref: OutputRef) -> dict[str, str]:
    import pyarrow.parquet as pq

    with store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
        schema = pq.read_schema(handle)
    return {field.name: str(field.type) for field in schema}


def read_json_output(store: ArtifactStore, ref: OutputRef) -> Any:
    with store.open(f"{ref.prefix}/{JSON_FILE}") as handle:
        return json.load(handle)


def read_summary(store: ArtifactStore, ref: OutputRef) -> dict[str, Any]:
    key = f"{ref.prefix}/{SUMMARY_FILE}"
    if not store.exists(key):
        return {}
    with store.open(key) as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {"value": data}


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json_safe(value) for key, value in row.items()}


def json_safe(value: Any) -> Any:
    """Plain, strict JSON: numpy values unwrapped, NaN/inf as null, dates as ISO text, the rest as repr."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(item) for item in value]
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
                return json_safe(getattr(value, attr)())
            except (TypeError, ValueError):
                break
    return repr(value)
