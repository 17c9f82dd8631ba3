"""What the time-series examples share: the service connection, the data files, .ts labels, the report.

Training uses the seed service's DEFAULT settings (tsfresh efficient features + selection, then baselines
and TPOT in a 120 s budget, chosen by 5-fold CV with the one-standard-error rule); only ``pipeline_id`` is
given, so re-running an example first deletes the steps its previous run left.
"""

from __future__ import annotations

import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from _common import datasets_dir

from automl_orchestra.client import Client, NotFoundError, OrchestraError, TimeSeriesService


def service() -> TimeSeriesService:
    client = Client(timeout=60.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); start one or set ORCHESTRA_URL") from exc
    return TimeSeriesService(client=client)


def data_file(*parts: str) -> Path:
    path = datasets_dir().joinpath("timeseries", *parts)
    if not path.is_file():
        raise SystemExit(f"{path} not found (see {datasets_dir() / 'README.md'})")
    return path


def forget(ts: TimeSeriesService, model_id: str) -> None:
    """Delete an earlier run's pipeline (the ingest step and everything after it, predictions included)."""
    with suppress(NotFoundError):
        ts.client.delete(f"ts-{model_id}-raw", cascade=True)
    with suppress(NotFoundError):
        ts.client.delete(f"ts-{model_id}-labels", cascade=True)


def ts_labels(path: Path) -> list[str]:
    """The class label of every series of a .ts file, in file order (series id = position)."""
    labels, in_data = [], False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if in_data:
            labels.append(text.rsplit(":", 1)[-1].strip())
        in_data = in_data or text.lower().startswith("@data")
    return labels


def train(ts: TimeSeriesService, model_id: str, raw: Path, labels: Path | None = None) -> dict[str, Any]:
    forget(ts, model_id)
    started = time.perf_counter()
    report = ts.train(raw, labels, {"pipeline_id": model_id})
    report["wallS"] = time.perf_counter() - started
    print(f"trained {model_id}: {report['bestLearner']} in {report['wallS']:.1f} s (trainTime {report['trainTime']})")
    print(f"  train shape {report['trainShape']}, mean CV accuracy {report['mean_cv_accuracy']:.4f}", end="")
    auc = report.get("mean_cv_roc_auc")
    print(f", mean CV roc_auc {auc:.4f}" if auc is not None else "")
    print(f"  pipeline: {str(report['modelType'])[:300]}")
    return report


def ucr(name: str) -> dict[str, Any]:
    """Train on ``{name}_TRAIN.ts``, predict ``{name}_TEST.ts``, print CV and test accuracy and wall time."""
    train_file, test_file = data_file(name, f"{name}_TRAIN.ts"), data_file(name, f"{name}_TEST.ts")
    with service() as ts:
        report = train(ts, name.lower(), train_file)
        started = time.perf_counter()
        predicted = ts.predict(name.lower(), test_file)
        truth = ts_labels(test_file)
        accuracy = sum(predicted[str(i)] == label for i, label in enumerate(truth)) / len(truth)
        seconds = time.perf_counter() - started
        print(f"  test accuracy {accuracy:.4f} on {len(truth)} series (prediction {seconds:.1f} s)")
        return {**report, "testAccuracy": accuracy}
