"""The rows of a predict request, in a serving worker: the body decoded (JSON records, Arrow IPC, Parquet or
an Open Inference Protocol request) and checked against the version's signature.

Every problem is a :class:`Refused` with the HTTP status the caller gets (413 for too many rows, 422 naming
the missing, unknown or wrongly typed columns): nothing a request sends reaches the model unchecked.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.serving import (
    ARROW_FORMAT,
    JSON_FORMAT,
    PARQUET_FORMAT,
    SERIES_FORMAT,
    V2_FORMAT,
    SeriesFile,
)

try:  # orjson parses a batch of records several times faster; an engine environment may lack it
    from orjson import loads
except ImportError:  # pragma: no cover -- the main environment has it
    from json import loads  # type: ignore[assignment]

# pandas' ``infer_dtype`` kinds each signature type accepts (``empty``: every value is null).
ACCEPTED_KINDS: dict[str, frozenset[str]] = {
    "integer": frozenset({"integer", "empty", "floating", "mixed-integer-float", "decimal"}),
    "number": frozenset({"integer", "empty", "floating", "mixed-integer-float", "decimal"}),
    "string": frozenset({"string", "empty", "categorical"}),
    "boolean": frozenset({"boolean", "empty"}),
}
_KIND_NAMES = {"floating": "number", "mixed-integer-float": "number", "decimal": "number", "mixed": "mixed values"}
# Open Inference Protocol datatypes and what their values must be.
V2_NUMBER_TYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
)
V2_TYPES = V2_NUMBER_TYPES | {"BOOL", "BYTES"}
# The most dimensions of one inference tensor (rows, then a model's input tensor: e.g. images [rows, C, H, W]).
MAX_RANK = 5
SCALARS = (str, int, float, bool, type(None))


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode(
    body_format: str, payload: bytes, max_rows: int, series: SeriesFile | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The request's rows as a table, and what the request asked besides (V2: its ``id`` and outputs)."""
    if body_format == JSON_FORMAT:
        return _records(_json(payload), max_rows), {}
    if body_format == V2_FORMAT:
        return _v2(_json(payload), max_rows)
    if body_format == ARROW_FORMAT:
        return _arrow(payload, max_rows), {}
    if body_format == PARQUET_FORMAT:
        return _parquet(payload, max_rows), {}
    if body_format == SERIES_FORMAT:
        return _series(payload, series, max_rows), {}
    raise Refused(415, f"unknown body format {body_format!r}")


def _json(payload: bytes) -> Any:
    try:
        return loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise Refused(422, f"the body is not valid JSON: {exc}") from None


_NUMBER_TYPES = frozenset({int, float, type(None)})


def number_rows(payload: bytes, names: Sequence[str], max_rows: int) -> np.ndarray | None:
    """A JSON body of records holding exactly ``names``, every value a number or null, as a float array with
    the columns in ``names`` order; None for any other body (it then takes the general way, which explains
    what is wrong with it). The common call of a model of number columns, made without building a table."""
    try:
        body = loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    records = [body["record"]] if "record" in body else body.get("records")
    if not isinstance(records, list) or not 0 < len(records) <= max_rows:
        return None
    width = len(names)
    if not all(type(record) is dict and len(record) == width for record in records):
        return None
    columns = []
    for name in names:
        try:
            column = [record[name] for record in records]
        except KeyError:
            return None
        if not set(map(type, column)) <= _NUMBER_TYPES:  # no bool, no text
            return None
        columns.append(column)
    return np.array(columns, dtype=float).T  # null becomes NaN


def _too_many(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise Refused(413, f"{rows} rows in one request; at most {max_rows} are allowed (send several batches)")


def _records(body: Any, max_rows: int) -> pd.DataFrame:
    if isinstance(body, dict) and isinstance(body.get("record"), dict) and set(body) == {"record"}:
        records = [body["record"]]
    elif isinstance(body, dict) and isinstance(body.get("records"), list) and set(body) == {"records"}:
        records = body["records"]
    else:
        raise Refused(422, 'the body must be {"records": [{column: value, ...}, ...]} or {"record": {...}}')
    if not records:
        raise Refused(422, "'records' is empty: send at least one row")
    _too_many(len(records), max_rows)
    first = records[0]
    if not isinstance(first, dict):
        raise Refused(422, "records[0] is not an object of column: value")
    keys = first.keys()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise Refused(422, f"records[{index}] is not an object of column: value")
        if record.keys() != keys:
            lacking = sorted(set(keys) - set(record))
            extra = sorted(set(record) - set(keys))
            raise Refused(
                422, f"records[{index}] has other columns than records[0]: lacks {lacking[:20]}, adds {extra[:20]}"
            )
    if len(records) == 1:  # the usual online call: the quick way to a one-row table
        _only_scalars(records, list(keys))
        return pd.DataFrame({column: [value] for column, value in first.items()})
    frame = pd.DataFrame.from_records(records, columns=list(keys))
    # A list or object in a cell leaves its column of mixed values: only those columns are looked through.
    mixed = [
        str(name)
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(frame[name], skipna=True) in MIXED_KINDS
    ]
    _only_scalars(records, mixed)
    return frame


# What ``infer_dtype`` says of a column holding a list or an object among its values.
MIXED_KINDS = frozenset({"mixed", "mixed-integer", "unknown-array"})


def _only_scalars(records: list[dict[str, Any]], columns: list[str]) -> None:
    for column in columns:
        bad = next((i for i, record in enumerate(records) if not isinstance(record[column], SCALARS)), None)
        if bad is not None:
            raise Refused(422, f"column {column!r}: records[{bad}] holds a list or object; send a single value")


def _arrow(payload: bytes, max_rows: int) -> pd.DataFrame:
    import pyarrow as pa

    try:
        reader = pa.ipc.open_stream(payload)
        table = reader.read_all()
    except pa.ArrowInvalid:
        try:
            table = pa.ipc.open_file(payload).read_all()
        except pa.ArrowInvalid as exc:
            raise Refused(422, f"the body is not an Arrow IPC stream or file: {exc}") from None
    _too_many(table.num_rows, max_rows)
    return _non_empty(table.to_pandas())


def _parquet(payload: bytes, max_rows: int) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(io.BytesIO(payload))
        _too_many(source.metadata.num_rows, max_rows)
        return _non_empty(source.read().to_pandas())
    except (pa.ArrowInvalid, OSError) as exc:
        raise Refused(422, f"the body is not a Parquet file: {exc}") from None


def _series(payload: bytes, series: SeriesFile | None, max_rows: int) -> pd.DataFrame:
    """An uploaded series file (long CSV or UCR ``.ts``) as ``dataset/timeseries`` reads it: the long table
    ``id``, ``time``, channels, which a time-series pipeline's version turns into one row per series."""
    from automl_orchestra.engines.timeseries.ingest import long_table

    if series is None:
        raise Refused(422, "a series body needs its file name and id / time columns")
    try:
        frame = long_table(payload, series.filename, series.column_id, series.column_sort)
    except StepError as exc:
        raise Refused(422, str(exc)) from None
    _too_many(len(frame), max_rows)
    return _non_empty(frame)


def _non_empty(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        raise Refused(422, "the body holds no rows")
    return frame


def _v2(body: Any, max_rows: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """An inference request: one input per column (shape ``[rows]`` or ``[rows, 1]``), or one input of shape
    ``[rows, features]`` whose columns are the signature's inputs in order (named ``__matrix__``), or one
    tensor ``[rows, d1, d2, ...]`` for a model of tensors (each row flattened in order, the model reshapes)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise Refused(422, "an inference request needs 'inputs': a list of tensors {name, shape, datatype, data}")
    columns: dict[str, Any] = {}
    rows: int | None = None
    for index, tensor in enumerate(body["inputs"]):
        name, shape, data = _tensor(tensor, index)
        if name in columns:
            raise Refused(422, f"input {name!r} is given twice")
        count = shape[0]
        _too_many(count, max_rows)
        if rows is not None and count != rows:
            raise Refused(422, f"input {name!r} has {count} rows, the inputs before it {rows}")
        rows = count
        if len(shape) >= 2 and math.prod(shape[1:]) != 1:
            if len(body["inputs"]) != 1:
                raise Refused(422, f"input {name!r} has shape {shape}: send one input per column, or one matrix")
            matrix = np.asarray(data, dtype=object).reshape(count, -1)
            return pd.DataFrame(matrix.tolist()).infer_objects(), {"matrix": True, **_v2_extras(body)}
        columns[name] = data
    return pd.DataFrame(columns), _v2_extras(body)


def _tensor(tensor: Any, index: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise Refused(422, f"{where} is not an object")
    name, shape, datatype, data = (tensor.get(key) for key in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise Refused(422, f"{where}.name must be a non-empty string")
    if datatype not in V2_TYPES:
        raise Refused(422, f"input {name!r}: datatype {datatype!r} is not one of {sorted(V2_TYPES)}")
    if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK and all(_count(v) for v in shape)):
        raise Refused(
            422, f"input {name!r}: shape must be [rows], [rows, columns] or [rows, d1, d2...] of positive integers"
        )
    flat = _flatten(data)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise Refused(422, f"input {name!r}: shape {shape} needs {expected} values, data holds {len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) or v is None for v in flat):
            raise Refused(422, f"input {name!r}: BYTES data must be strings")
    elif datatype == "BOOL":
        if not all(isinstance(v, bool) or v is None for v in flat):
            raise Refused(422, f"input {name!r}: BOOL data must be true or false")
    elif not all(_number(v) or v is None for v in flat):
        raise Refused(422, f"input {name!r}: {datatype} data must be numbers")
    return name, shape, flat


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flatten(data: Any) -> list[Any]:
    """Tensor data, flat (row-major nested lists, as some clients send, up to ``MAX_RANK`` levels)."""
    if not isinstance(data, list):
        raise Refused(422, "tensor data must be a list")
    flat: list[Any] = data
    for _ in range(MAX_RANK):
        if not any(isinstance(v, list) for v in flat):
            break
        if not all(isinstance(v, list) for v in flat):
            raise Refused(422, "tensor data mixes values and lists")
        flat = [v for row in flat for v in row]
    if any(isinstance(v, list | dict) for v in flat):
        raise Refused(422, f"tensor data nests deeper than {MAX_RANK} levels, or holds objects")
    return flat


def _v2_extras(body: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if isinstance(body.get("id"), str):
        extras["id"] = body["id"][:256]
    outputs = body.get("outputs")
    if isinstance(outputs, list):
        extras["outputs"] = [o.get("name") for o in outputs if isinstance(o, dict) and isinstance(o.get("name"), str)]
    return extras


# ----- the signature -----------------------------------------------------------------------------------


def expected_columns(signature: dict[str, Any] | None, names: Sequence[str] | None) -> list[dict[str, Any]] | None:
    """The columns a version takes (name and type), from its signature or else the feature ``names`` the model
    itself gives; None when neither says (the rows then go to the model as they are)."""
    inputs = (signature or {}).get("inputs")
    if isinstance(inputs, list) and inputs:
        return [item for item in inputs if isinstance(item, dict) and isinstance(item.get("name"), str)]
    if names is None:
        return None
    return [{"name": str(name), "type": None} for name in names]


def checked(
    frame: pd.DataFrame, columns: Sequence[dict[str, Any]] | None, matrix: bool = False, hints: Sequence[str] = ()
) -> pd.DataFrame:
    """``frame`` with the expected columns in the expected order; 422 naming every problem found (and, when
    columns are missing or unknown, the ``hints`` of the version's other input forms)."""
    if columns is None:
        return frame
    names = [item["name"] for item in columns]
    if matrix:
        if frame.shape[1] != len(names):
            raise Refused(422, f"the input matrix has {frame.shape[1]} columns; the model takes {len(names)}: {names}")
        frame.columns = names
    given = [str(c) for c in frame.columns]
    frame.columns = given
    problems: list[str] = []
    missing = [name for name in names if name not in set(given)]
    unknown = [name for name in given if name not in set(names)]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if unknown:
        problems.append(f"unknown column(s) {unknown}")
    if missing or unknown:
        problems.extend(hints)
    position = {name: index for index, name in enumerate(given)}
    dtypes = frame.dtypes.tolist()
    for item in columns:
        expected = item.get("type")
        if item["name"] not in position or expected not in ACCEPTED_KINDS:
            continue
        dtype = dtypes[position[item["name"]]]
        if expected in ("integer", "number") and getattr(dtype, "kind", "") in ("i", "u", "f"):
            continue  # a number column: nothing to look at
        kind = _kind(frame, position[item["name"]], dtype)
        if kind not in ACCEPTED_KINDS[expected]:
            problems.append(f"column {item['name']!r} must hold {expected} values, not {_KIND_NAMES.get(kind, kind)}")
    if problems:
        raise Refused(422, "the rows do not match the model's signature: " + "; ".join(problems))
    return frame if given == names else frame[names]


_DTYPE_KINDS = {"b": "boolean", "i": "integer", "u": "integer", "f": "floating"}


def _kind(frame: pd.DataFrame, index: int, dtype: Any) -> str:
    """What the values of column ``index`` are, as pandas' ``infer_dtype`` names it -- from the column's dtype
    when it says (numbers, booleans), from the value itself for one row (the usual online call: cheaper than
    making the column a Series), else inferred."""
    numeric = _DTYPE_KINDS.get(getattr(dtype, "kind", ""))
    if numeric == "floating" and frame.iloc[:, index].isna().all():
        return "empty"  # nulls only: JSON nulls become a float column
    if numeric is not None:
        return numeric
    if len(frame) == 1:
        value = frame.iat[0, index]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "empty"
        return str(pd.api.types.infer_dtype([value], skipna=True))
    return str(pd.api.types.infer_dtype(frame.iloc[:, index], skipna=True))
