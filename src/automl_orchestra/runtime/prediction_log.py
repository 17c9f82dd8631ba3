"""Predictions logged to Parquet, in a serving worker: a sampled share of the rows each version predicts,
with its inputs, its answer and the time, in ``predictions/<model>/<version>/`` of the artifact store (one
file per flush: ``<UTC time>-<pid>-<n>.parquet``). The drift report reads them.

Rows are buffered per version and written when ``FLUSH_ROWS`` are waiting, when the oldest waited
``FLUSH_S`` (checked at each request) and when the worker stops; each file is written atomically.
"""

from __future__ import annotations

import io
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.serving import prediction_log_prefix
from automl_orchestra.store.artifacts import ArtifactStore

FLUSH_ROWS = 10_000
FLUSH_S = 30.0
# Columns the log adds beside the request's own (prefixed so they never meet a feature's name).
PREDICTION_COLUMN = "_prediction"
PROBABILITIES_COLUMN = "_probabilities"
CLASSES_COLUMN = "_classes"
TIME_COLUMN = "_time"
REQUEST_COLUMN = "_request_id"


@dataclass
class _Buffer:
    frames: list[pd.DataFrame] = field(default_factory=list)
    rows: int = 0
    since: float = field(default_factory=time.monotonic)


class PredictionLog:
    def __init__(self, store: ArtifactStore, rate: float, seed: int | None = None) -> None:
        self.store = store
        self.rate = rate
        self._random = random.Random(seed)
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._written = 0

    def add(
        self,
        model: str,
        version: int,
        rows: pd.DataFrame,
        predictions: np.ndarray,
        probabilities: np.ndarray | None,
        classes: list[Any] | None,
        request_id: str | None,
    ) -> None:
        if self.rate <= 0:
            return
        keep = np.fromiter((self._random.random() < self.rate for _ in range(len(rows))), dtype=bool, count=len(rows))
        if not keep.any():
            self._flush_old()
            return
        logged = rows.loc[keep].reset_index(drop=True).copy()
        logged[PREDICTION_COLUMN] = list(np.asarray(predictions)[keep]) if predictions.ndim == 1 else None
        if probabilities is not None:
            logged[PROBABILITIES_COLUMN] = [list(map(float, row)) for row in probabilities[keep]]
            logged[CLASSES_COLUMN] = [[str(c) for c in classes or []]] * len(logged)
        logged[TIME_COLUMN] = pd.Timestamp(datetime.now(UTC))
        logged[REQUEST_COLUMN] = request_id
        buffer = self._buffers.setdefault((model, version), _Buffer())
        buffer.frames.append(logged)
        buffer.rows += len(logged)
        if buffer.rows >= FLUSH_ROWS:
            self._flush(model, version)
        self._flush_old()

    def close(self) -> None:
        for model, version in list(self._buffers):
            self._flush(model, version)

    def _flush_old(self) -> None:
        now = time.monotonic()
        for (model, version), buffer in list(self._buffers.items()):
            if now - buffer.since >= FLUSH_S:
                self._flush(model, version)

    def _flush(self, model: str, version: int) -> None:
        buffer = self._buffers.pop((model, version), None)
        if buffer is None or not buffer.frames:
            return
        frame = pd.concat(buffer.frames, ignore_index=True)
        sink = io.BytesIO()
        frame.to_parquet(sink, index=False)
        self._written += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = f"{prediction_log_prefix(model, version)}/{stamp}-{os.getpid()}-{self._written}.parquet"
        self.store.write_bytes(key, sink.getvalue())
