"""The seed's time-series service: train from raw series + labels + parameters, list models, predict.

with TimeSeriesService("http://127.0.0.1:8080") as ts:
    report = ts.train("data/lp1_long.csv", "data/lp1_labels.csv", {"pipeline_id": "lp1"})
    ts.predict(report["modelId"], "data/new_series.csv")  # {series_id: label}
    ts.models()  # every trained pipeline with its CV metrics
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl_orchestra.client.http import Client, ClientOwner, Metadata, MetadataList

PathLike = str | os.PathLike[str]
# Training waits for the whole search server-side: the read timeout must outlast the time budget.
TRAIN_EXTRA_S = 900.0


class TimeSeriesService(ClientOwner):
    """A thin wrapper over ``/timeseries/*``; a :class:`Client` is created unless one is given."""

    def __init__(self, url: str | None = None, token: str | None = None, *, client: Client | None = None) -> None:
        super().__init__(client, lambda: Client(url, token))

    def train(
        self, raw_data: PathLike, labels: PathLike | None = None, params: Mapping[str, Any] | PathLike | None = None
    ) -> Metadata:
        """Train a pipeline; ``params`` is a dict or a YAML/JSON file (extract_features, tpot, pipeline_id)."""
        files: dict[str, Any] = {"raw_data": _file(raw_data)}
        if labels is not None:
            files["labels"] = _file(labels)
        if params is not None:
            text = json.dumps(params) if isinstance(params, Mapping) else Path(params).read_text(encoding="utf-8")
            files["params"] = ("params.yml", text.encode("utf-8"))
        budget = float(dict(params).get("tpot", {}).get("timeBudget", 120)) if isinstance(params, Mapping) else 120
        result: Metadata = self.client.call("POST", "/timeseries/train", files=files, timeout=budget + TRAIN_EXTRA_S)
        return result

    def predict(self, model_id: str, raw_data: PathLike) -> dict[str, Any]:
        """``{series_id: predicted label}`` for the series in ``raw_data`` (same format as training)."""
        result: dict[str, Any] = self.client.call(
            "POST", f"/timeseries/{model_id}/predict", files={"raw_data": _file(raw_data)}, timeout=TRAIN_EXTRA_S
        )
        return result

    def models(self) -> MetadataList:
        result: MetadataList = self.client.call("GET", "/timeseries/models")
        return result


def _file(path: PathLike) -> tuple[str, bytes]:
    source = Path(path)
    return source.name, source.read_bytes()
