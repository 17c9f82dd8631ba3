"""How the API reads a page of a run's output without loading it all."""

from __future__ import annotations

import json
from typing import Any

from automl_orchestra.contracts.outputs import JSON_FILE, SUMMARY_FILE, TABLE_FILE, OutputRef, json_safe
from automl_orchestra.store.artifacts import ArtifactStore


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


def query_mismatches(store: ArtifactStore, ref: OutputRef, query: dict[str, Any]) -> list[str]:
    """Why each filter of ``query`` cannot be compared with its column (e.g. a string for an integer column);
    empty when every value fits. Columns the table lacks are the caller's to report."""
    import pyarrow.parquet as pq

    with store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
        schema = pq.read_schema(handle)
    problems = []
    for column, wanted in query.items():
        if wanted is None or column not in schema.names:
            continue
        kind = schema.field(column).type
        if not _comparable(kind, wanted):
            given = type(wanted).__name__.replace("str", "string").replace("bool", "boolean")
            problems.append(f"column {column!r} holds {kind} values; {wanted!r} is a {given}")
    return problems


def _comparable(kind: Any, value: Any) -> bool:
    """Whether Arrow can compare a ``kind`` column with ``value`` -- and does so without silently changing it:
    a boolean is no number, a number no string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    base = kind.value_type if pa.types.is_dictionary(kind) else kind
    numeric = pa.types.is_integer(base) or pa.types.is_floating(base) or pa.types.is_decimal(base)
    if isinstance(value, bool):
        return bool(pa.types.is_boolean(base))
    if isinstance(value, int | float) and not numeric:
        return False
    if isinstance(value, str) and (numeric or pa.types.is_boolean(base)):
        return False
    try:
        pc.equal(pa.array([], type=kind), pa.scalar(value))
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return True


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
