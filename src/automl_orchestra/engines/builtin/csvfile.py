"""Streaming CSV -> Parquet conversion with type inference that survives surprises deep in the file.

Design notes (measured on 2 cores, 1M-6M rows):

* ``pyarrow.csv.open_csv`` reads ahead up to 32 blocks in a background thread, so memory is about
  32 x block size, not 1 x: 16 MiB blocks peaked at ~0.5 GB on a 450 MB file. 2 MiB blocks keep Arrow's
  memory under ~100 MB and were as fast (within 10 %), so that is the block size.
* Arrow infers types from the first block only; a small block would make inference short-sighted. So
  types are inferred once from the first ``INFERENCE_BYTES`` of the file and passed as explicit column
  types to the streaming pass.
* A value later in the file can still contradict the inferred type ("1.5" in an int64 column). Arrow
  then stops with "In CSV column #i: CSV conversion error to int64: invalid value '1.5'"; the column is
  widened (int64 -> float64 -> string, bool/date/... -> string) and the conversion restarts. Each column
  can widen at most a few times, so the loop ends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import DatasetBody
from automl_orchestra.engines.core.tables import CastFailure, ParquetSink, TableInfo, cast_batch, validate_casts

CSV_BLOCK_SIZE = 2 << 20
INFERENCE_BYTES = 16 << 20
# Files up to this size are read in one multi-threaded pass (twice as fast as the streaming reader, which
# parses serially); larger ones stream, so memory stays bounded whatever the file size.
WHOLE_FILE_BYTES = 256 << 20
WHOLE_FILE_BLOCK_SIZE = 16 << 20
# pandas' default missing-value markers, so a file reads the same here as with pandas.read_csv.
NULL_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip
_MAX_RESTARTS = 1000
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'$", re.DOTALL)
_PARSE_ERROR = re.compile(r"CSV parse error: (?:Row #(\d+): )?(.*)$", re.DOTALL)
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\x28\xb5\x2f\xfd", "zstd"))


@dataclass(frozen=True)
class CsvOptions:
    separator: str = ","
    header: bool = True
    # With a header: the columns to keep (in this order). Without one: the names of the file's columns.
    columns: list[str] | None = None
    encoding: str = "utf-8"
    block_size: int = CSV_BLOCK_SIZE


@dataclass
class _Layout:
    """What the inference pass learnt: normalised column names and the types to force."""

    names: list[str] | None = None
    skip_header: bool = False  # the names replace the file's header line
    types: dict[str, pa.DataType] = field(default_factory=dict)


class _NeedsStreaming(Exception):
    """The one-pass reader cannot handle this file (e.g. blank or repeated header names)."""


class _Widenable(Exception):
    def __init__(self, column: str, current: str, value: str) -> None:
        super().__init__(column, current, value)
        self.column, self.current, self.value = column, current, value


Progress = Callable[[int], None]  # called with the number of rows converted so far


def csv_to_parquet(
    source: Path,
    dest: Path,
    options: CsvOptions,
    casts: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> TableInfo:
    """Convert ``source`` (optionally gzip/bz2/zstd-compressed) to a Parquet file at ``dest``."""
    compression = _detect_compression(source)
    if _is_empty(source, compression):
        raise StepError("the file is empty")
    whole = compression is None and source.stat().st_size <= WHOLE_FILE_BYTES
    layout = _Layout() if whole else _infer_layout(source, compression, options)
    for _attempt in range(_MAX_RESTARTS):
        try:
            if whole:
                return _convert_whole(source, dest, options, layout, casts or {})
            return _convert(source, dest, compression, options, layout, casts or {}, _throttled(progress))
        except _NeedsStreaming:
            whole, layout = False, _infer_layout(source, compression, options)
        except _Widenable as failure:
            wider = widen_type(failure.current, failure.value)
            print(
                f"column {failure.column!r}: value {failure.value!r} is not {failure.current}; "
                f"reading it as {wider} and converting again",
                flush=True,
            )
            layout.types[failure.column] = wider
    raise StepError("the CSV types could not be settled")  # unreachable: each widening moves up a ladder


def _throttled(progress: Progress | None, every_s: float = 2.0) -> Progress:
    last = time.monotonic()

    def report(rows: int) -> None:
        nonlocal last
        if progress is not None and time.monotonic() - last >= every_s:
            last = time.monotonic()
            progress(rows)

    return report


def widen_type(current: str, value: str) -> pa.DataType:
    """The next type on the widening ladder (from Arrow's type name ``current``) that accepts ``value``."""
    if current == "null":  # the column was empty where the type was inferred
        ladder = [pa.int64(), pa.float64(), pa.bool_()]
    elif current.startswith(("int", "uint")):
        ladder = [pa.float64()]
    else:  # float, bool, dates and times: only text holds every value
        ladder = []
    for candidate in ladder:
        if _parses(value, candidate):
            return candidate
    return pa.string()


def _parses(value: str, data_type: pa.DataType) -> bool:
    try:
        pc.cast(pa.array([value]), data_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _detect_compression(source: Path) -> str | None:
    with source.open("rb") as handle:
        head = handle.read(4)
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _is_empty(source: Path, compression: str | None) -> bool:
    with pa.input_stream(str(source), compression=compression) as stream:
        head = stream.read(4096)
    return len(head) < 4096 and not head.strip()  # nothing, or only blank lines


def _read_options(options: CsvOptions, layout: _Layout, *, threads: bool = True) -> pcsv.ReadOptions:
    names = layout.names if layout.names is not None else (None if options.header else options.columns)
    return pcsv.ReadOptions(
        use_threads=threads,
        block_size=options.block_size,
        encoding=options.encoding,
        column_names=names,
        autogenerate_column_names=names is None and not options.header,
        skip_rows=1 if layout.skip_header else 0,
    )


def _parse_options(options: CsvOptions) -> pcsv.ParseOptions:
    # newlines_in_values: quoted values may span lines; measured at no cost for the streaming reader.
    return pcsv.ParseOptions(delimiter=options.separator, newlines_in_values=True)


def _convert_options(layout: _Layout) -> pcsv.ConvertOptions:
    return pcsv.ConvertOptions(
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=NULL_VALUES,
        column_types=dict(layout.types),
    )


def _infer_layout(source: Path, compression: str | None, options: CsvOptions) -> _Layout:
    """Column names and types from the first ``INFERENCE_BYTES``; an empty layout when that fails."""
    with pa.input_stream(str(source), compression=compression) as stream:
        head = stream.read(INFERENCE_BYTES + 1)
    if len(head) > INFERENCE_BYTES:
        head = head[: head.rfind(b"\n", 0, INFERENCE_BYTES) + 1]  # whole lines only
    layout = _Layout()
    try:
        table = pcsv.read_csv(
            pa.BufferReader(head),
            read_options=_read_options(options, layout),
            parse_options=_parse_options(options),
            convert_options=_convert_options(layout),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return layout  # the streaming pass reports the problem, with the row it occurs on
    names = list(table.schema.names)
    if options.header:
        fixed = _normalise_names(names)
        if fixed != names:
            layout.names, layout.skip_header, names = fixed, True, fixed
    layout.types = {
        name: column.type for name, column in zip(names, table.columns, strict=True) if column.type != pa.null()
    }
    return layout


def _normalise_names(names: list[str]) -> list[str]:
    """pandas-style names for blank and repeated headers ("Unnamed: 0", "a.1"): Parquet needs unique ones."""
    result: list[str] = []
    for index, name in enumerate(names):
        candidate = name if name.strip() else f"Unnamed: {index}"
        base, suffix = candidate, 1
        while candidate in result:
            candidate, suffix = f"{base}.{suffix}", suffix + 1
        result.append(candidate)
    return result


def _convert(
    source: Path,
    dest: Path,
    compression: str | None,
    options: CsvOptions,
    layout: _Layout,
    casts: dict[str, str],
    progress: Progress,
) -> TableInfo:
    with pa.input_stream(str(source), compression=compression) as stream:
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=_read_options(options, layout),
                parse_options=_parse_options(options),
                convert_options=_convert_options(layout),
            )
        except pa.ArrowInvalid as exc:
            raise _read_error(exc, [], source, compression, options, layout) from None
        names = list(reader.schema.names)
        _check_text(reader.schema, options)
        selected = _selected_columns(names, options)
        validate_casts(casts, selected)
        with ParquetSink(dest) as sink:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as exc:
                    raise _read_error(exc, names, source, compression, options, layout) from None
                sink.write(_prepare(batch, selected, casts, sink.rows, options))
                progress(sink.rows)
            if sink.rows == 0:  # header only: still a table, with the (cast) columns
                sink.write(_prepare(_empty_batch(reader.schema), selected, casts, 0, options))
            return sink.close()


def _convert_whole(source: Path, dest: Path, options: CsvOptions, layout: _Layout, casts: dict[str, str]) -> TableInfo:
    """One multi-threaded read of the whole file, then Parquet; conversion surprises widen and retry."""
    whole_options = CsvOptions(**{**options.__dict__, "block_size": WHOLE_FILE_BLOCK_SIZE})
    try:
        table = pcsv.read_csv(
            str(source),
            read_options=_read_options(whole_options, layout),
            parse_options=_parse_options(options),
            convert_options=_convert_options(layout),
        )
    except pa.ArrowInvalid as exc:
        names = _header_names(source, options, layout) if _CONVERSION_ERROR.match(str(exc).strip()) else []
        raise _read_error(exc, names, source, None, options, layout) from None
    names = list(table.schema.names)
    if options.header and _normalise_names(names) != names:
        raise _NeedsStreaming
    _check_text(table.schema, options)
    selected = _selected_columns(names, options)
    validate_casts(casts, selected)
    with ParquetSink(dest) as sink:
        for batch in table.to_batches():
            sink.write(_prepare(batch, selected, casts, sink.rows, options))
        if sink.rows == 0:  # header only: still a table, with the (cast) columns
            sink.write(_prepare(_empty_batch(table.schema), selected, casts, 0, options))
        return sink.close()


def _header_names(source: Path, options: CsvOptions, layout: _Layout) -> list[str]:
    """Column names as the reader sees them (only needed to name a column in an error)."""
    reader = pcsv.open_csv(
        str(source),
        read_options=_read_options(options, layout, threads=False),
        parse_options=_parse_options(options),
        convert_options=pcsv.ConvertOptions(column_types={}, include_columns=[]),
    )
    return list(reader.schema.names)


def _check_text(schema: pa.Schema, options: CsvOptions) -> None:
    # Arrow infers "binary" for bytes that are not valid text in the encoding: never what a user wants.
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary:
        raise StepError(
            f"column(s) {binary} are not valid {options.encoding} text; "
            "set the 'encoding' parameter (e.g. 'latin-1' or 'cp1252')"
        )


def _selected_columns(names: list[str], options: CsvOptions) -> list[str]:
    if options.columns is None or not options.header:
        return names
    unknown = [name for name in options.columns if name not in names]
    if unknown:
        raise StepError(f"unknown column(s) {unknown}; the file has columns {names}")
    return list(options.columns)


def _prepare(
    batch: pa.RecordBatch, selected: list[str], casts: dict[str, str], row_offset: int, options: CsvOptions
) -> pa.RecordBatch:
    if selected != batch.schema.names:
        batch = batch.select(selected)
    try:
        return cast_batch(batch, casts, row_offset)
    except CastFailure as failure:
        first_data_line = 2 if options.header else 1
        raise failure.at_line(failure.row + first_data_line) from None


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def _read_error(
    exc: pa.ArrowInvalid,
    names: list[str],
    source: Path,
    compression: str | None,
    options: CsvOptions,
    layout: _Layout,
) -> Exception:
    """Turn an Arrow CSV error into a widening request or a message that says what to fix and where."""
    message = str(exc).strip()
    conversion = _CONVERSION_ERROR.match(message)
    if conversion and names:
        index, target, value = int(conversion.group(1)), conversion.group(2), conversion.group(3)
        if index < len(names) and target != "string":
            return _Widenable(names[index], target, value)
        if target == "string":
            return StepError(
                f"column {names[index] if index < len(names) else index} is not valid {options.encoding} "
                "text; set the 'encoding' parameter (e.g. 'latin-1')"
            )
    if message.startswith("Empty CSV file"):
        return StepError("the file is empty")
    if message.startswith("CSV parse error"):
        return StepError(_describe_parse_error(source, compression, options, layout, message))
    return StepError(f"cannot read the CSV file: {message}")


def _describe_parse_error(
    source: Path, compression: str | None, options: CsvOptions, layout: _Layout, message: str
) -> str:
    # The multi-threaded reader does not know row numbers; a single-threaded re-read (failure path only)
    # reports "Row #n", which counts physical lines from 1, header included.
    located = _PARSE_ERROR.match(_single_threaded_error(source, compression, options, layout) or message)
    if located is None:
        return f"malformed CSV: {message}"
    line, reason = located.group(1), located.group(2).strip()
    where = f" at line {line}" if line else ""
    hint = ""
    if "Expected" in reason and "columns" in reason:
        hint = f" (check the separator, currently {options.separator!r}, and the quoting of values)"
    return f"malformed CSV{where}: {reason}{hint}"


def _single_threaded_error(source: Path, compression: str | None, options: CsvOptions, layout: _Layout) -> str | None:
    try:
        with pa.input_stream(str(source), compression=compression) as stream:
            reader = pcsv.open_csv(
                stream,
                read_options=_read_options(options, layout, threads=False),
                parse_options=_parse_options(options),
                convert_options=_convert_options(layout),
            )
            for _batch in reader:
                pass
    except pa.ArrowInvalid as exc:
        return str(exc).strip()
    return None


def csv_options_from(request: DatasetBody) -> CsvOptions:
    """The ``dataset/csv`` reading options of a request; its model checked the types (the separator is one
    character), what it leaves open is checked here, where a bad value would otherwise fail obscurely."""
    columns = request.columns
    if columns is not None and (not columns or not all(columns)):
        raise StepError("parameter 'columns' must be a non-empty list of column names")
    if columns is not None and len(set(columns)) != len(columns):
        raise StepError("parameter 'columns' lists a column more than once")
    encoding = request.encoding or "utf-8"
    _check_encoding(encoding)
    return CsvOptions(separator=request.separator, header=request.header, columns=columns, encoding=encoding)


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise StepError(f"unknown encoding {encoding!r}") from None
