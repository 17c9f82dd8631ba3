"""The builtin tools: dataset ingest (csv, generic), transform (projection, dataType), explore (histogram).

They work on Parquet one record batch at a time, never on a whole DataFrame, so a dataset larger than a
worker's memory can be ingested, projected, cast and summarised.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import SUMMARY_FILE, TABLE_FILE, OutputRef
from automl_orchestra.contracts.parameters import DatasetBody
from automl_orchestra.engines.builtin.csvfile import csv_options_from, csv_to_parquet
from automl_orchestra.engines.builtin.parameters import DataTypeBody, HistogramBody, ProjectionBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.downloads import safe_filename
from automl_orchestra.engines.core.sources import open_source
from automl_orchestra.engines.core.tables import (
    ROW_GROUP_SIZE,
    ParquetSink,
    TableInfo,
    cast_batch,
    is_numeric,
    table_metadata,
    table_summary,
    validate_casts,
)
from automl_orchestra.engines.core.values import write_json

_MB = 1024 * 1024


# ----- dataset ------------------------------------------------------------------------------------


class CsvDataset(Engine):
    """``dataset/csv``: a CSV file stored as typed Parquet."""

    name = "csv"

    def dataset(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(DatasetBody)
        options = csv_options_from(request)
        casts: dict[str, str] = dict(request.types or {})
        pa.set_cpu_count(ctx.cpus)  # Arrow's reader threads follow the step's CPU allowance
        dest = ctx.output_dir / TABLE_FILE
        with open_source(ctx) as source:
            info = csv_to_parquet(
                source.path, dest, options, casts, progress=lambda rows: ctx.progress(None, f"{rows:,} rows converted")
            )
        return _table_result(ctx, info, {"source": source.description})


class GenericDataset(Engine):
    """``dataset/generic``: any file, stored as is; referencing the step gives its local path."""

    name = "generic"

    def dataset(self, ctx: StepContext) -> StepResult:
        with open_source(ctx) as source:
            filename = safe_filename(source.filename)
            dest = ctx.output_dir / filename
            if source.disposable:
                shutil.move(source.path, dest)
            else:
                shutil.copyfile(source.path, dest)
        metadata = {
            "filename": filename,
            "sizeBytes": dest.stat().st_size,
            "sha256": _sha256(dest),
            "source": source.description,
        }
        output = OutputRef(kind="file", prefix="", files=[filename])
        return StepResult(has_value=False, output=output, metadata=metadata)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _table_result(ctx: StepContext, info: TableInfo, extra: dict[str, Any] | None = None) -> StepResult:
    """The result of a step that wrote ``data.parquet`` itself."""
    write_json(ctx.output_dir / SUMMARY_FILE, table_summary(info.schema, info.rows))
    names = list(info.schema.names)
    output = OutputRef(kind="table", prefix="", files=[TABLE_FILE, SUMMARY_FILE], attributes=names)
    metadata = {**table_metadata(info), **(extra or {})}
    return StepResult(has_value=False, output=output, metadata=metadata)


# ----- transform ----------------------------------------------------------------------------------


@contextlib.contextmanager
def parent_table(ctx: StepContext, parent: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file of the table step ``parent`` (the request's ``parentName``), opened batch-wise."""
    ref = ctx.job.inputs.get(parent)
    if ref is None:
        raise StepError(f"step {parent!r} is not an input of this step")
    if ref.kind != "table":
        raise StepError(f"step {parent!r} holds a {ref.kind}, not a table (dataset)")
    handle: IO[Any]
    with ctx.store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
        yield pq.ParquetFile(handle)


def _chosen_fields(fields: list[str] | None, available: list[str]) -> list[str]:
    """The request's ``fields`` checked against the table (every field when none are listed)."""
    if not fields:
        return available
    if len(set(fields)) != len(fields):
        duplicates = sorted({name for name in fields if fields.count(name) > 1})
        raise StepError(f"parameter 'fields' lists {duplicates} more than once")
    unknown = [name for name in fields if name not in available]
    if unknown:
        raise StepError(f"unknown field(s) {unknown}; available fields: {available}")
    return fields


class Projection(Engine):
    """``transform/projection``: keep the listed fields, in the listed order, cast as ``types`` says."""

    name = "projection"

    def transform(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(ProjectionBody)  # its model requires at least one field
        with parent_table(ctx, request.parentName) as parquet:
            fields = _chosen_fields(request.fields, parquet.schema_arrow.names)
            casts = validate_casts(dict(request.types or {}), fields)
            empty = pa.schema([parquet.schema_arrow.field(name) for name in fields])
            with ParquetSink(ctx.output_dir / TABLE_FILE) as sink:
                for batch in parquet.iter_batches(batch_size=ROW_GROUP_SIZE, columns=fields):
                    # iter_batches keeps file order; we keep the user's
                    sink.write(cast_batch(batch.select(fields), casts, row_offset=sink.rows))
                if sink.rows == 0:
                    sink.write(cast_batch(_empty_batch(empty), casts))
                info = sink.close()
        return _table_result(ctx, info)


class DataType(Engine):
    """``transform/dataType``: cast fields to number, integer, string or boolean, failing on bad values."""

    name = "dataType"

    def transform(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(DataTypeBody)  # its model requires at least one field and known types
        casts: dict[str, str] = dict(request.types)
        with parent_table(ctx, request.parentName) as parquet:
            schema = parquet.schema_arrow
            validate_casts(casts, list(schema.names))
            with ParquetSink(ctx.output_dir / TABLE_FILE) as sink:
                for batch in parquet.iter_batches(batch_size=ROW_GROUP_SIZE):
                    sink.write(cast_batch(batch, casts, row_offset=sink.rows))
                if sink.rows == 0:
                    sink.write(cast_batch(_empty_batch(schema), casts))
                info = sink.close()
        return _table_result(ctx, info)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


# ----- explore ------------------------------------------------------------------------------------

TOP_CATEGORIES = 100
OTHER = "__other__"


class Histogram(Engine):
    """``explore/histogram``: value counts for categorical fields, equal-width bins for numeric fields.

    Two passes over the file: counts and numeric ranges first, then the bins (whose edges need the range).
    """

    name = "histogram"

    def explore(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(HistogramBody)
        bins = request.bins
        with parent_table(ctx, request.parentName) as parquet:
            schema = parquet.schema_arrow
            fields = _chosen_fields(request.fields, list(schema.names))
            numeric = [name for name in fields if is_numeric(schema.field(name).type)]
            stats = _first_pass(parquet, fields, numeric)
            edges = {name: _edges(stats.ranges.get(name), bins) for name in numeric}
            counts = _bin_counts(parquet, edges)
        rows: list[dict[str, Any]] = []
        for name in fields:
            if name in edges:
                rows.extend(_bin_rows(name, edges[name], counts.get(name)))
            else:
                rows.extend(_category_rows(name, stats.categories[name]))
        frame = pd.DataFrame(rows, columns=["field", "kind", "value", "lower", "upper", "count"])
        frame = frame.astype({"lower": "float64", "upper": "float64", "count": "int64"})
        metadata = {"fields": fields, "nulls": stats.nulls, "bins": bins}
        return StepResult(value=frame, metadata=metadata)


@dataclass
class _Stats:
    nulls: dict[str, int]
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, Counter[str]]


def _first_pass(parquet: pq.ParquetFile, fields: list[str], numeric: list[str]) -> _Stats:
    stats = _Stats(nulls=dict.fromkeys(fields, 0), ranges={}, categories={})
    for name in fields:
        if name not in numeric:
            stats.categories[name] = Counter()
    for batch in parquet.iter_batches(batch_size=ROW_GROUP_SIZE, columns=fields):
        for name in fields:
            column = batch.column(name)
            if name in numeric:
                values = _finite(column)
                stats.nulls[name] += len(column) - len(values)
                if len(values):
                    low, high = float(values.min()), float(values.max())
                    old = stats.ranges.get(name)
                    stats.ranges[name] = (min(low, old[0]), max(high, old[1])) if old else (low, high)
            else:
                stats.nulls[name] += column.null_count
                stats.categories[name].update(_value_counts(column))
    return stats


def _finite(column: pa.Array) -> np.ndarray:
    """Non-null, finite values as float64 (NaN counts as missing; infinities have no bin)."""
    values = pc.cast(column, pa.float64()).drop_null().to_numpy(zero_copy_only=False)
    return values[np.isfinite(values)]


def _value_counts(column: pa.Array) -> dict[str, int]:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    counts = pc.value_counts(column.drop_null())
    values = counts.field("values")
    labels = _labels(values)
    return dict(zip(labels, counts.field("counts").to_pylist(), strict=True))


def _labels(values: pa.Array) -> list[str]:
    if pa.types.is_boolean(values.type):
        return ["true" if v else "false" for v in values.to_pylist()]
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return [str(v) for v in values.to_pylist()]
    return [str(v) for v in pc.cast(values, pa.string()).to_pylist()]


def _edges(value_range: tuple[float, float] | None, bins: int) -> np.ndarray | None:
    if value_range is None:
        return None  # no finite value: no bins
    return np.histogram_bin_edges(np.asarray(value_range, dtype=np.float64), bins=bins)


def _bin_counts(parquet: pq.ParquetFile, edges: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    known = {name: bounds for name, bounds in edges.items() if bounds is not None}
    totals = {name: np.zeros(len(bounds) - 1, dtype=np.int64) for name, bounds in known.items()}
    if not known:
        return totals
    for batch in parquet.iter_batches(batch_size=ROW_GROUP_SIZE, columns=list(known)):
        for name, bounds in known.items():
            counts, _ = np.histogram(_finite(batch.column(name)), bins=bounds)
            totals[name] += counts
    return totals


def _bin_rows(name: str, edges: np.ndarray | None, counts: np.ndarray | None) -> list[dict[str, Any]]:
    if edges is None or counts is None:
        return []
    rows = []
    last = len(counts) - 1
    for index, count in enumerate(counts):
        lower, upper = float(edges[index]), float(edges[index + 1])
        closing = "]" if index == last else ")"  # numpy's last bin includes its upper edge
        rows.append(
            {
                "field": name,
                "kind": "bin",
                "value": f"[{lower:g}, {upper:g}{closing}",
                "lower": lower,
                "upper": upper,
                "count": int(count),
            }
        )
    return rows


def _category_rows(name: str, counts: Counter[str]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    rows: list[dict[str, Any]] = [
        {"field": name, "kind": "category", "value": value, "lower": None, "upper": None, "count": count}
        for value, count in ranked[:TOP_CATEGORIES]
    ]
    rest = sum(count for _, count in ranked[TOP_CATEGORIES:])
    if rest:
        rows.append({"field": name, "kind": "category", "value": OTHER, "lower": None, "upper": None, "count": rest})
    return rows
