"""A model's own ``predict``, with no server: the references of the serving benchmark.

    python benchmarks/_plain_predict.py --model model.joblib --rows rows.parquet [--repeat 5] [--single 200]

Run by the main environment's interpreter (the libraries of the serving workers). Loads a registered version's
frozen ``model.joblib`` and the rows (a Parquet file of the rows the benchmark sends; pandas reads them into
int64 and object columns, as the serving worker's JSON decoding does), predicts once to warm up, then times
``predict`` and ``predict_proba`` on all rows ``--repeat`` times (0: not at all), and ``predict`` +
``predict_proba`` on each of the first ``--single`` rows alone (what one single-row request asks of the model,
as a one-row frame). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import joblib
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--single", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    model = joblib.load(args.model)
    load_s = time.perf_counter() - started
    rows = pd.read_parquet(args.rows)
    result: dict[str, Any] = {"rows": len(rows), "loadS": round(load_s, 4), "model": repr(model)[:300]}
    if args.repeat > 0:
        model.predict(rows)
        model.predict_proba(rows)  # warm-up: lazy imports and first-call work
        predict, proba = [], []
        for _ in range(args.repeat):
            began = time.perf_counter()
            model.predict(rows)
            predict.append(time.perf_counter() - began)
            began = time.perf_counter()
            model.predict_proba(rows)
            proba.append(time.perf_counter() - began)
        result |= {
            "predictS": predict,
            "predictProbaS": proba,
            "predictMedianS": statistics.median(predict),
            "predictProbaMedianS": statistics.median(proba),
        }
    singles = [rows.iloc[[i]].reset_index(drop=True) for i in range(min(args.single, len(rows)))]
    if singles:
        model.predict(singles[0])
        model.predict_proba(singles[0])
        single = []
        for row in singles:
            began = time.perf_counter()
            model.predict(row)
            model.predict_proba(row)
            single.append(time.perf_counter() - began)
        result |= {
            "singleRowP50Ms": statistics.median(single) * 1000,
            "singleRowPredictAndProbaMs": [round(value * 1000, 4) for value in single],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
