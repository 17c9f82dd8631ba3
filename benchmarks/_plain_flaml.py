"""The peer of the flaml benchmark: the FLAML call of the ``automl/flaml`` step, in a plain script.

    python benchmarks/_plain_flaml.py --csv adult.data --columns '[...]' --target income --budget 60

Same frame (pandas, no header, the given names), same column handling (every feature column, text columns
as pandas categories) and the same ``fit`` arguments as the engine (src/automl_orchestra/engines/flaml.py:
``n_jobs`` = the step's cpus = 1, ``retrain_full="budget"``, a log file). Run it with OMP_NUM_THREADS=1, as
the worker does. Prints one JSON line: rows, features, import/load/fit seconds, best learner, best loss and trials.
"""

from __future__ import annotations

import time

IMPORTS_STARTED = time.perf_counter()

import argparse  # noqa: E402 - the imports are timed
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
from flaml import AutoML  # noqa: E402

IMPORT_S = time.perf_counter() - IMPORTS_STARTED


def load(csv: str, columns: list[str], target: str) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(csv, header=None, names=columns)
    frame = frame[frame[target].notna()]
    features = frame.drop(columns=[target])
    text = [name for name in features.columns if features[name].dtype == object]
    return features.astype(dict.fromkeys(text, "category")), frame[target]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--columns", required=True, help="JSON list of the file's column names")
    parser.add_argument("--target", required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    loading = time.perf_counter()
    X, y = load(args.csv, json.loads(args.columns), args.target)
    load_s = time.perf_counter() - loading
    with tempfile.TemporaryDirectory() as folder:
        automl = AutoML()
        started = time.perf_counter()
        automl.fit(
            X_train=X,
            y_train=y,
            task="classification",
            time_budget=args.budget,
            metric=args.metric,
            seed=args.seed,
            n_jobs=args.n_jobs,
            verbose=1,
            log_file_name=str(Path(folder) / "flaml.log"),
            mlflow_logging=False,
            retrain_full="budget",
        )
        fit_s = time.perf_counter() - started
    trials = sum(int(getattr(state, "total_iter", 0) or 0) for state in automl._search_states.values())
    result = {
        "rows": len(X),
        "features": list(X.columns),
        "importS": round(IMPORT_S, 3),
        "loadS": round(load_s, 3),
        "fitS": round(fit_s, 3),
        "bestLearner": automl.best_estimator,
        "bestLoss": automl.best_loss,
        "trials": trials,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
