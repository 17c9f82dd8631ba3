"""Arrow-level helpers shared by the table steps: friendly type names, checked casts and a Parquet sink.

Everything here works one record batch at a time, so a step's memory is bounded by a batch, not by the
dataset. Casts are *checked*: a value that does not convert fails the step with the column, the row and the
value, because a silently nulled value is a data bug that surfaces much later, far from its cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from automl_orchestra.contracts.errors import StepError

ROW_GROUP_SIZE = 65536
# Row groups of ingested tables hold about this many bytes (at least ROW_GROUP_SIZE rows): a content page
# reads one group, so this bounds its memory, while fewer, larger groups halve the cost of writing.
ROW_GROUP_BYTES = 32 << 20
CAST_KINDS = ("number", "integer", "string", "boolean")
TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")
_SUMMARY_MAX_COLUMNS = 200


# ----- type names ---------------------------------------------------------------------------------


def friendly_type(data_type: pa.DataType) -> str:
    """The user-facing name of an Arrow type (the names ``transform/dataType`` accepts, and a few more)."""
    types = pa.types
    if types.is_dictionary(data_type):
        return friendly_type(data_type.value_type)
    checks: tuple[tuple[Callable[[pa.DataType], bool], str], ...] = (
        (types.is_boolean, "boolean"),
        (types.is_integer, "integer"),
        (types.is_floating, "number"),
        (types.is_decimal, "number"),
        (_is_text, "string"),
        (types.is_timestamp, "datetime"),
        (types.is_date, "date"),
        (types.is_time, "time"),
        (types.is_duration, "duration"),
        (_is_binary, "binary"),
        (types.is_null, "null"),
        (types.is_struct, "struct"),
        (types.is_map, "map"),
        (_is_list, "list"),
    )
    for check, name in checks:
        if check(data_type):
            return name
    return str(data_type)


def is_numeric(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_integer(data_type) or types.is_floating(data_type) or types.is_decimal(data_type))


def _is_text(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_string(data_type) or types.is_large_string(data_type) or types.is_string_view(data_type))


def _is_binary(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_binary(data_type) or types.is_large_binary(data_type) or types.is_fixed_size_binary(data_type))


def _is_list(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_list(data_type) or types.is_large_list(data_type) or types.is_fixed_size_list(data_type))


# ----- checked casts ------------------------------------------------------------------------------


class CastFailure(StepError):
    """One value of a column does not convert to the requested type."""

    def __init__(self, column: str, kind: str, row: int, value: Any) -> None:
        self.column, self.kind, self.row, self.value = column, kind, row, value
        super().__init__(f"cannot cast column {column!r} to {kind}: row {row} has value {_show(value)}")

    def at_line(self, line: int) -> StepError:
        """The same failure with the source file's line number, for steps that read a file."""
        return StepError(f"{self} (line {line} of the file)")


class _BadValue(Exception):
    def __init__(self, index: int, value: Any) -> None:
        super().__init__(index, value)
        self.index, self.value = index, value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_casts(types: dict[str, Any], available: list[str]) -> dict[str, str]:
    """Check a ``{field: kind}`` mapping against a table's fields before reading any data."""
    unknown = [name for name in types if name not in available]
    if unknown:
        raise StepError(f"unknown field(s) {unknown}; available fields: {available}")
    for name, kind in types.items():
        if kind not in CAST_KINDS:
            raise StepError(f"field {name!r}: unknown type {kind!r}; use one of {list(CAST_KINDS)}")
    return dict(types)


def cast_batch(batch: pa.RecordBatch, types: dict[str, str], row_offset: int = 0) -> pa.RecordBatch:
    """``batch`` with the listed columns cast; ``row_offset`` is the table row of the batch's first row."""
    if not types:
        return batch
    arrays = [
        cast_array(batch.column(i), name, types[name], row_offset) if name in types else batch.column(i)
        for i, name in enumerate(batch.schema.names)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def cast_array(array: pa.Array, column: str, kind: str, row_offset: int = 0) -> pa.Array:
    """Cast one column chunk to ``number``/``integer``/``string``/``boolean``, refusing lossy conversions."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    caster = _CASTERS.get(kind)
    if caster is None:
        raise StepError(f"field {column!r}: unknown type {kind!r}; use one of {list(CAST_KINDS)}")
    if kind in ("number", "integer") and not _numeric_source(array.type):
        # Arrow would turn dates into epoch counts: technically a cast, never what the user meant.
        raise StepError(f"cannot cast column {column!r} ({friendly_type(array.type)}) to {kind}")
    try:
        result: pa.Array = caster(array)
    except _BadValue as bad:
        raise CastFailure(column, kind, row_offset + bad.index, bad.value) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise StepError(
            f"cannot cast column {column!r} ({friendly_type(array.type)}, {array.type}) to {kind}: {exc}"
        ) from None
    return result


def _numeric_source(data_type: pa.DataType) -> bool:
    types = pa.types
    return is_numeric(data_type) or types.is_boolean(data_type) or types.is_null(data_type) or _is_text(data_type)


def _to_number(array: pa.Array) -> pa.Array:
    if _is_text(array.type):
        return _checked_cast(_blank_to_null(array), pa.float64())
    return pc.cast(array, pa.float64())


def _to_integer(array: pa.Array) -> pa.Array:
    if pa.types.is_floating(array.type) or pa.types.is_decimal(array.type):
        return _integral_floats(pc.cast(array, pa.float64()))
    if not _is_text(array.type):
        return _checked_cast(array, pa.int64())
    text = _blank_to_null(array)
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid:
        pass  # "3.0" or "1e3" are integers written as floats: go through float64, reporting the text
    try:
        return _integral_floats(_checked_cast(text, pa.float64()))
    except _BadValue as bad:
        raise _BadValue(bad.index, text[bad.index].as_py()) from None


def _integral_floats(values: pa.Array) -> pa.Array:
    values = _nan_to_null(values)
    fractional = pc.or_(pc.invert(pc.is_finite(values)), pc.not_equal(values, pc.floor(values)))
    index = _first_true(fractional)
    if index is not None:
        raise _BadValue(index, values[index].as_py())
    return _checked_cast(values, pa.int64())


def _to_string(array: pa.Array) -> pa.Array:
    return pc.cast(array, pa.string())


def _to_boolean(array: pa.Array) -> pa.Array:
    if pa.types.is_boolean(array.type):
        return array
    if pa.types.is_null(array.type):
        return pc.cast(array, pa.bool_())
    if _is_text(array.type):
        values = pc.utf8_lower(_blank_to_null(array))
        true, false = pc.is_in(values, pa.array(TRUE_WORDS)), pc.is_in(values, pa.array(FALSE_WORDS))
    elif is_numeric(array.type):
        values = _nan_to_null(pc.cast(array, pa.float64()))
        true, false = pc.equal(values, 1.0), pc.equal(values, 0.0)
    else:
        return pc.cast(array, pa.bool_())
    present = pc.is_valid(values)  # is_in() says False, not null, for a null: keep nulls null
    invalid = pc.and_(present, pc.invert(pc.or_(true, false)))
    index = _first_true(invalid)
    if index is not None:
        raise _BadValue(index, array[index].as_py())
    return pc.if_else(present, true, pa.scalar(None, pa.bool_()))


_CASTERS: dict[str, Callable[[pa.Array], pa.Array]] = {
    "number": _to_number,
    "integer": _to_integer,
    "string": _to_string,
    "boolean": _to_boolean,
}


def _nan_to_null(values: pa.Array) -> pa.Array:
    # NaN is pandas' spelling of "missing": it becomes null instead of failing an integer/boolean cast.
    return pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)


def _blank_to_null(array: pa.Array) -> pa.Array:
    text = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _first_true(mask: pa.Array) -> int | None:
    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    return int(hits[0].as_py()) if len(hits) else None


def _checked_cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    try:
        return pc.cast(array, target)
    except pa.ArrowInvalid:
        index = _first_failure(array, target)
        raise _BadValue(index, array[index].as_py()) from None


def _first_failure(array: pa.Array, target: pa.DataType) -> int:
    """Index of the first value Arrow refuses to cast, found by bisecting prefixes.

    Asking Arrow itself (rather than re-parsing in Python) guarantees we blame the value Arrow rejected;
    it costs O(n log n) but runs only on the failure path.
    """
    good, bad = 0, len(array)  # the prefix of length `good` casts; the one of length `bad` does not
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            pc.cast(array.slice(0, middle), target)
            good = middle
        except pa.ArrowInvalid:
            bad = middle
    return bad - 1


# ----- Parquet output -----------------------------------------------------------------------------


@dataclass
class TableInfo:
    path: Path
    schema: pa.Schema
    rows: int

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def group_rows(sample: pa.RecordBatch) -> int:
    """Rows per row group for a table shaped like ``sample``: about ROW_GROUP_BYTES, at least ROW_GROUP_SIZE."""
    row_bytes = max(1, sample.nbytes // max(1, sample.num_rows))
    return max(ROW_GROUP_SIZE, ROW_GROUP_BYTES // row_bytes)


class ParquetSink:
    """Writes record batches to one Parquet file; the file's schema is the first batch's schema.

    Used as a context manager: on an exception the partial file is deleted, so a failed step never leaves a
    truncated table that a later step could mistake for a result.
    """

    def __init__(self, path: Path, empty_schema: pa.Schema | None = None) -> None:
        self.path = path
        self.empty_schema = empty_schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        # Batches are gathered into row groups of ROW_GROUP_SIZE rows: readers page by row group, and many
        # small groups (one per CSV block) make both writing and reading slower.
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._group_rows = ROW_GROUP_SIZE

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.schema.metadata:
            # pandas' schema metadata describes the *source* table's columns and dtypes; after a projection
            # or a cast it would be wrong, and pandas trusts it when reading (e.g. restoring an Int64 dtype).
            batch = batch.replace_schema_metadata(None)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), batch.schema)
            self._group_rows = group_rows(batch)
        elif batch.schema != self._writer.schema:
            batch = batch.cast(self._writer.schema)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= self._group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._writer is not None and self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._writer.schema)
            self._writer.write_table(table, row_group_size=self._group_rows)
        self._pending, self._pending_rows = [], 0

    def close(self) -> TableInfo:
        if self._writer is None:
            schema = self.empty_schema if self.empty_schema is not None else pa.schema([])
            pq.write_table(schema.empty_table(), str(self.path))
            return TableInfo(self.path, schema, 0)
        self._flush()
        schema = self._writer.schema
        self._writer.close()
        self._writer = None
        return TableInfo(self.path, schema, self.rows)

    def abort(self) -> None:
        self._pending, self._pending_rows = [], 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()


def table_metadata(info: TableInfo) -> dict[str, Any]:
    """The step metadata every table-producing step reports (shown to users next to the data)."""
    return {
        "fields": list(info.schema.names),
        "types": {field.name: friendly_type(field.type) for field in info.schema},
        "arrowTypes": {field.name: str(field.type) for field in info.schema},
        "rowCount": info.rows,
        "columnCount": len(info.schema.names),
        "sizeBytes": info.size_bytes,
    }


def table_summary(schema: pa.Schema, rows: int) -> dict[str, Any]:
    """The small ``summary.json`` of a table output (capped, so a 10,000-column table stays small)."""
    fields = list(schema)[:_SUMMARY_MAX_COLUMNS]
    return {
        "kind": "table",
        "shape": [rows, len(schema.names)],
        "dtypes": {field.name: str(field.type) for field in fields},
        "truncated": len(schema.names) > _SUMMARY_MAX_COLUMNS,
    }
