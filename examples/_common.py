"""What both Titanic examples share: where the data is, the server connection, re-runnable step names,
label alignment by ``PassengerId`` and readable tables.

The server URL comes from ``ORCHESTRA_URL`` (default ``http://127.0.0.1:8080``), the token from
``ORCHESTRA_TOKEN``; the datasets from ``ORCHESTRA_DATASETS`` (default ``../shared/datasets`` relative to the
repository root). The CSV files are uploaded, so the server needs no import directory.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_orchestra.client import (
    Client,
    DatasetCsv,
    FunctionPython,
    NotFoundError,
    OrchestraError,
    TransformDataType,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_ENV = "ORCHESTRA_DATASETS"
# The seed's dataType step (Learning Orchestra Appendix A): these fields are read as numbers.
NUMERIC_TYPES = {"Age": "number", "Fare": "number", "Parch": "number", "Pclass": "number", "SibSp": "number"}
TARGET = "Survived"
TITANIC_FILES = ("train.csv", "test.csv", "test_labels.csv")
PAGE = 100  # the server's largest content page

# Attach the Kaggle test labels to the test rows by PassengerId (never by position), refusing any row
# without exactly one label. A function step: it runs in a worker, the result is a dataset of its own.
JOIN_LABELS_CODE = """
labelled = data.merge(labels[["PassengerId", "Survived"]], on="PassengerId", how="left", validate="one_to_one")
unlabelled = int(labelled["Survived"].isna().sum())
if unlabelled or len(labelled) != len(data):
    raise ValueError(f"{unlabelled} of {len(data)} test rows have no label in the labels file")
labelled["Survived"] = labelled["Survived"].astype("int64")
response = labelled
"""


def datasets_dir() -> Path:
    """``$ORCHESTRA_DATASETS``, else ``<repository>/../shared/datasets``."""
    given = os.environ.get(DATASETS_ENV)
    folder = Path(given).expanduser() if given else REPO_ROOT.parent / "shared" / "datasets"
    if not folder.is_dir():
        raise SystemExit(f"datasets directory {folder} not found: set {DATASETS_ENV}")
    return folder.resolve()


def titanic_file(name: str) -> Path:
    path = datasets_dir() / "titanic" / name
    if not path.is_file():
        raise SystemExit(f"{path} not found (see {datasets_dir() / 'README.md'})")
    return path


def connect() -> Client:
    """A client for ``$ORCHESTRA_URL`` / ``$ORCHESTRA_TOKEN``, once the data files and the server are there
    (before an example deletes anything); exits with a clear message otherwise."""
    for name in TITANIC_FILES:
        titanic_file(name)
    client = Client(timeout=60.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); start one or set ORCHESTRA_URL") from exc
    return client


def reset(client: Client, names: Sequence[str]) -> None:
    """Delete what an earlier run of the example left (with its dependents), as the seed pipeline does."""
    for name in names:
        with suppress(NotFoundError):
            client.delete(name, cascade=True)


@dataclass(frozen=True)
class TitanicData:
    """Names of the ingested Titanic datasets; ``test_labelled`` is ``test`` plus its ``Survived`` label."""

    train: str
    test: str
    labels: str
    test_labelled: str


def ingest_titanic(client: Client, prefix: str) -> TitanicData:
    """Upload train/test/labels, apply the seed's dataType in place and join the test labels by PassengerId."""
    data = TitanicData(f"{prefix}_train", f"{prefix}_test", f"{prefix}_labels", f"{prefix}_test_labelled")
    datasets = DatasetCsv(client=client)
    for name, file in zip((data.train, data.test, data.labels), TITANIC_FILES, strict=True):
        datasets.upload_dataset_sync(name, titanic_file(file))
    types = TransformDataType(client=client)
    for name in (data.train, data.test):
        types.update_dataset_type_sync(name, NUMERIC_TYPES)  # Learning Orchestra's in-place dataType
    FunctionPython(client=client).run_function_sync(
        data.test_labelled,
        parameters={"data": f"${data.test}", "labels": f"${data.labels}"},
        code=JOIN_LABELS_CODE,
        description="test rows with their Kaggle label, joined on PassengerId",
    )
    return data


def read_rows(client: Client, name: str) -> list[dict[str, Any]]:
    """Every row of a table step, page by page."""
    metadata = client.get(name)
    service, tool = str(metadata["service"]), str(metadata["tool"])
    rows: list[dict[str, Any]] = []
    while True:
        page = client.content(service, tool, name, skip=len(rows), limit=PAGE)[1:]
        rows.extend(page)
        if len(page) < PAGE:
            return rows


def local_labels() -> dict[int, int]:
    """``PassengerId -> Survived`` from the Kaggle test labels file, read here, not on the server."""
    with titanic_file("test_labels.csv").open(newline="") as handle:
        return {int(row["PassengerId"]): int(row[TARGET]) for row in csv.DictReader(handle)}


def local_test_ids() -> list[int]:
    """The PassengerIds of test.csv in file order (the order of the prediction rows)."""
    with titanic_file("test.csv").open(newline="") as handle:
        return [int(row["PassengerId"]) for row in csv.DictReader(handle)]


def client_side_accuracy(client: Client, predictions: str) -> float:
    """Accuracy of a prediction step against the local labels, matched by PassengerId (a cross-check)."""
    rows = read_rows(client, predictions)
    ids, labels = local_test_ids(), local_labels()
    if len(rows) != len(ids):
        raise SystemExit(f"{predictions} has {len(rows)} rows, test.csv {len(ids)}")
    predicted = [int(next(iter(row.values()))) for row in rows]  # one column: the predicted class
    return sum(labels[pid] == guess for pid, guess in zip(ids, predicted, strict=True)) / len(ids)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` -> seconds since the block started."""
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started


Column = tuple[str, str, str]  # (key in the row, header, format spec)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table; ``None`` prints as ``-``."""
    cells = [[_cell(row.get(key), spec) for key, _header, spec in columns] for row in rows]
    headers = [header for _key, header, _spec in columns]
    widths = [max(len(text) for text in (header, *(line[i] for line in cells))) for i, header in enumerate(headers)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def run_table(client: Client, names: Sequence[str]) -> str:
    """Status and wall time of the current run of each step (a derived step has no run of its own)."""
    rows = []
    for name in names:
        metadata = client.get(name)
        runs = client.runs(name)
        run = runs[-1] if runs else {"status": metadata["status"]}
        rows.append({"step": name, "kind": f"{metadata['service']}/{metadata['tool']}", **run})
    return format_table(
        rows, [("step", "step", ""), ("kind", "service/tool", ""), ("status", "status", ""), ("wallS", "run s", ".2f")]
    )
