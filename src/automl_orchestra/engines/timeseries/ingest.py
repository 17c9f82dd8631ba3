"""``dataset/timeseries``: time series as one long-format table (``id, time, channels...``, what tsfresh
expects), from a long CSV or a sktime/UCR ``.ts`` file.

Class labels of a ``.ts`` file become the derived ``{name}_labels`` dataset (``id, label``) rather than a
column of the long table: tsfresh would otherwise take the label for one more channel, and the seed's
service already receives labels as a separate table, so features and labels are joined the same way
whichever format the series came in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import DatasetBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.sources import open_source

LABEL_COLUMN = "label"
_HEADER_TAGS = frozenset(
    {"problemname", "timestamps", "missing", "univariate", "dimensions", "equallength", "serieslength",
     "classlabel", "targetlabel", "data"}
)  # fmt: skip


@dataclass
class TsFile:
    """A parsed ``.ts`` file: equal-length series, ``values[series][dimension][time]``."""

    values: list[list[list[float]]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    has_labels: bool = False
    problem: str = ""

    def long_frame(self) -> pd.DataFrame:
        dims = len(self.values[0]) if self.values else 0
        length = len(self.values[0][0]) if dims else 0
        rows = len(self.values) * length
        frame: dict[str, object] = {
            "id": [i for i in range(len(self.values)) for _ in range(length)],
            "time": list(range(length)) * len(self.values),
        }
        for dim in range(dims):
            frame[f"dim_{dim}"] = [v for series in self.values for v in series[dim]]
        return pd.DataFrame(frame, index=pd.RangeIndex(rows))

    def label_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"id": range(len(self.labels)), LABEL_COLUMN: self.labels})


def parse_ts(lines: Iterable[str]) -> TsFile:
    """Parse the sktime/UCR ``.ts`` format; every error names the offending line."""
    parsed = TsFile()
    in_data = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = _header(parsed, line, number)
            continue
        _data_line(parsed, line, number)
    if not in_data:
        raise StepError("not a .ts file: no @data line")
    if not parsed.values:
        raise StepError("the .ts file has no series after @data")
    return parsed


def _header(parsed: TsFile, line: str, number: int) -> bool:
    if not line.startswith("@"):
        raise StepError(f"line {number}: expected a header line (@tag value) before @data, got {line[:60]!r}")
    tag, _, value = line[1:].partition(" ")
    tag = tag.lower()
    if tag not in _HEADER_TAGS:
        raise StepError(f"line {number}: unknown header @{tag}")
    words = value.split()
    if tag == "classlabel":
        parsed.has_labels = bool(words) and words[0].lower() == "true"
    elif tag == "problemname":
        parsed.problem = value.strip()
    elif tag == "equallength" and words and words[0].lower() == "false":
        raise StepError(f"line {number}: only equal-length series are supported (@equalLength false)")
    elif tag == "timestamps" and words and words[0].lower() == "true":
        raise StepError(f"line {number}: series with time stamps are not supported (@timeStamps true)")
    return tag == "data"


def _data_line(parsed: TsFile, line: str, number: int) -> None:
    fields = line.split(":")
    if parsed.has_labels:
        if len(fields) < 2:
            raise StepError(f"line {number}: expected dimensions and a class label separated by ':'")
        parsed.labels.append(fields[-1].strip())
        fields = fields[:-1]
    series = [_values(text, number, dim) for dim, text in enumerate(fields)]
    lengths = {len(values) for values in series}
    if len(lengths) != 1:
        raise StepError(f"line {number}: dimensions have different lengths {sorted(lengths)}")
    if parsed.values:
        first = parsed.values[0]
        if len(series) != len(first):
            raise StepError(f"line {number}: {len(series)} dimension(s), but the first series has {len(first)}")
        if len(series[0]) != len(first[0]):
            raise StepError(f"line {number}: series length {len(series[0])}, but the first series has {len(first[0])}")
    parsed.values.append(series)


def _values(text: str, number: int, dim: int) -> list[float]:
    values = []
    for item in text.split(","):
        item = item.strip()
        if item == "?":
            values.append(math.nan)
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise StepError(f"line {number}, dimension {dim}: {item[:40]!r} is not a number") from None
    return values


def read_long_csv(path: Path | IO[bytes], column_id: str, column_sort: str) -> pd.DataFrame:
    """A long CSV with its id and time columns first, sorted by (id, time) as tsfresh expects."""
    frame = pd.read_csv(path)
    missing = [name for name in (column_id, column_sort) if name not in frame.columns]
    if missing:
        raise StepError(f"column(s) {missing} not in the CSV header {list(frame.columns)[:20]}")
    channels = [name for name in frame.columns if name not in (column_id, column_sort)]
    if not channels:
        raise StepError("the CSV has no channel column besides the id and time columns")
    bad = [name for name in channels if not pd.api.types.is_numeric_dtype(frame[name])]
    if bad:
        raise StepError(f"channel column(s) {bad} are not numeric")
    frame = frame[[column_id, column_sort, *channels]].rename(columns={column_id: "id", column_sort: "time"})
    return frame.sort_values(["id", "time"], kind="stable").reset_index(drop=True)


def long_table(data: bytes, filename: str, column_id: str = "id", column_sort: str = "time") -> pd.DataFrame:
    """An uploaded series file as ``dataset/timeseries`` reads it: a ``.ts`` file or a long CSV, as the long
    table (``id``, ``time``, the channels; a ``.ts`` file's labels are left out)."""
    if filename.lower().endswith(".ts"):
        return parse_ts(io.StringIO(data.decode("utf-8", errors="replace"))).long_frame()
    try:
        return read_long_csv(io.BytesIO(data), column_id, column_sort)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise StepError(f"the series file is not a readable CSV: {exc}") from None


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from handle


class TimeSeriesDataset(Engine):
    """``dataset/timeseries``: a long CSV or a ``.ts`` file as a long table; ``.ts`` labels as ``_labels``."""

    name = "timeseries"

    def dataset(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(DatasetBody)
        column_id = request.columnId or "id"
        column_sort = request.columnSort or "time"
        with open_source(ctx) as source:
            if source.filename.lower().endswith(".ts"):
                parsed = parse_ts(_lines(source.path))
                frame, labels = parsed.long_frame(), parsed.label_frame()
                extra = {"format": "ts", "problemName": parsed.problem, "labelled": parsed.has_labels}
            else:
                frame = read_long_csv(source.path, column_id, column_sort)
                labels = pd.DataFrame({"id": pd.Series([], dtype=frame["id"].dtype), LABEL_COLUMN: []})
                extra = {"format": "long-csv", "labelled": False}
        channels = [name for name in frame.columns if name not in ("id", "time")]
        metadata = {
            **extra,
            "series": int(frame["id"].nunique()),
            "channels": channels,
            "rows": len(frame),
            "source": source.description,
        }
        return StepResult(value=frame, metadata=metadata, derived={"labels": labels.astype({LABEL_COLUMN: str})})
