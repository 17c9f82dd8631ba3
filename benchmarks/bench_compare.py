"""compare: ``automl/compare`` against each engine called directly, on adult, bank marketing (without
``duration``) and German credit.

1. Budget adherence: wall of every engine step of the comparison (its run's wall time, the H2O JVM start
   included) / ``timeBudget`` (goal <= 1.05).
2. Quality: the comparison's best holdout ROC AUC is at least every engine's in the comparison, and within
   0.5 % of the best engine run directly (same train/holdout rows -- the comparison's own split, downloaded --
   same budget, one thread, in a plain script of this run, on this machine).

``--quick``: German credit only, 20 s budgets, FLAML / AutoGluon / H2O (a check that it all works; the bars
are for the full run).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import Server, run_script, run_step, section, verdict, wait_for_warm_pool, write_result

NAME = "compare"
GOALS = {"budgetRatio": 1.05, "withinBest": 0.005}
ENGINES = ["flaml", "autogluon", "h2o"]
DIRECT = r"""
import json, socket, sys, tempfile, time
import numpy as np, pandas as pd
from sklearn.metrics import roc_auc_score

engine, train_path, holdout_path, target, budget = sys.argv[1:6]
budget = float(budget)
train, holdout = pd.read_parquet(train_path), pd.read_parquet(holdout_path)
positive = sorted(train[target].astype(str).unique())[1]
features = [c for c in train.columns if c != target]
started = time.perf_counter()
if engine == "flaml":
    from flaml import AutoML
    text = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    cast = lambda f: f[features].astype({c: "category" for c in text})
    model = AutoML()
    model.fit(X_train=cast(train), y_train=train[target].astype(str), task="classification", time_budget=budget,
              metric="roc_auc", seed=1, n_jobs=1, verbose=0, retrain_full="budget", mlflow_logging=False)
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(cast(holdout))[:, classes.index(positive)]
elif engine == "autogluon":
    from autogluon.tabular import TabularPredictor
    frame = train.assign(**{target: train[target].astype(str)})
    predictor = TabularPredictor(label=target, eval_metric="roc_auc", path=tempfile.mkdtemp(), verbosity=0)
    predictor.fit(frame, time_limit=budget, num_cpus=1, num_gpus=0)
    proba = predictor.predict_proba(holdout[features], as_multiclass=True)[positive].to_numpy()
else:
    import h2o
    from h2o.automl import H2OAutoML
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    h2o.init(port=port, nthreads=1, max_mem_size="2252M", verbose=False)
    h2o.no_progress()
    types = {c: "enum" for c in features if not pd.api.types.is_numeric_dtype(train[c])} | {target: "enum"}
    def frame(f):
        f = f.copy()
        for c in types:
            if c in f: f[c] = f[c].astype(str)
        return h2o.H2OFrame(f, column_types={c: t for c, t in types.items() if c in f})
    aml = H2OAutoML(max_runtime_secs=int(budget), seed=1, sort_metric="AUC", verbosity="warn")
    aml.train(x=features, y=target, training_frame=frame(train))
    scored = aml.leader.predict(frame(holdout[features])).as_data_frame(use_multi_thread=False)
    proba = scored[positive].to_numpy()
    h2o.cluster().shutdown()
fit = time.perf_counter() - started
auc = roc_auc_score(holdout[target].astype(str) == positive, proba)
print(json.dumps({"engine": engine, "wallS": fit, "holdoutAuc": float(auc)}))
"""


def compare_one(client: Any, dataset: str, budget: float, engines: list[str] | None) -> dict[str, Any]:
    from examples.compare_tabular import DATASETS, datasets_dir

    frame, target = DATASETS[dataset](datasets_dir())
    data, name = f"b_{dataset}_data", f"b_{dataset}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{data}.csv"
        frame.to_csv(path, index=False)
        run_step(client, "dataset", "csv", {"name": data}, upload=path)
    body = {
        "name": name, "parentName": data, "target": target, "timeBudget": budget, "metric": "roc_auc", "seed": 1,
        "limits": {"cpus": 1, "timeoutS": budget * 2 + 120},
        **({"engines": engines} if engines else {}),
    }  # fmt: skip
    timing = run_step(client, "automl", "compare", body)
    rows = client.content("dataset", "leaderboard", f"{name}_leaderboard", limit=100)[1:]
    finished = [row for row in rows if row["status"] == "finished"]
    # Every engine holds the budget, one that failed too (it must fail within it, not run on).
    ratios = {row["engine"]: row["fitSeconds"] / budget for row in rows if row["fitSeconds"] is not None}
    direct = direct_runs(client, name, target, budget, [row["engine"] for row in finished])
    best = timing.metadata["bestScore"]
    best_direct = max((run["holdoutAuc"] for run in direct.values()), default=float("nan"))
    return {
        "rows": len(frame),
        "budgetS": budget,
        "leaderboard": rows,
        "budgetRatios": ratios,
        "bestEngine": timing.metadata["bestEngine"],
        "bestHoldoutAuc": best,
        "direct": direct,
        "bestDirectAuc": best_direct,
        "bestAtLeastEveryEngine": all(best >= row["holdoutScore"] for row in finished),
        "shortfallVsDirect": (best_direct - best) / best_direct,
    }


def direct_runs(client: Any, name: str, target: str, budget: float, engines: list[str]) -> dict[str, Any]:
    """Each engine alone, in a plain script, on the comparison's own train and holdout rows."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        train, holdout = Path(folder) / "train.parquet", Path(folder) / "holdout.parquet"
        train.write_bytes(client.read_artifact(f"{name}_split", "data.parquet"))
        holdout.write_bytes(client.read_artifact(f"{name}_split_holdout", "data.parquet"))
        script = Path(folder) / "direct.py"
        script.write_text(DIRECT)
        for engine in engines:
            if engine not in ENGINES:
                continue
            run = run_script([str(script), engine, str(train), str(holdout), target, str(budget)])
            results[engine] = {**json.loads(run.stdout.strip().splitlines()[-1]), "processWallS": run.wall_s}
    return results


def main(quick: bool = False) -> dict[str, Any]:
    budget = 20.0 if quick else 60.0
    datasets = ["german"] if quick else ["adult", "bank", "german"]
    engines = ENGINES if quick else None  # the full run: every installed tabular engine
    section(f"compare: automl/compare vs each engine directly ({budget:g} s per engine) on {', '.join(datasets)}")
    record: dict[str, Any] = {}
    with Server(env={"ORCHESTRA_WORKERS": "2"}) as server, server.client(timeout=3600) as client:
        wait_for_warm_pool(server)
        for dataset in datasets:
            record[dataset] = compare_one(client, dataset, budget, engines)
    for dataset, result in record.items():
        ratios = result["budgetRatios"]
        ok_budget = all(r <= GOALS["budgetRatio"] for r in ratios.values())
        print(f"{dataset}: wall/budget {json.dumps({k: round(v, 3) for k, v in ratios.items()})}: {verdict(ok_budget)}")
        direct = {k: round(v["holdoutAuc"], 4) for k, v in result["direct"].items()}
        ok_quality = result["bestAtLeastEveryEngine"] and result["shortfallVsDirect"] <= GOALS["withinBest"]
        print(
            f"  best {result['bestEngine']} holdout AUC {result['bestHoldoutAuc']:.4f}; direct {direct}; "
            f"shortfall vs best direct {result['shortfallVsDirect']:.4%} (goal <= 0.5%): {verdict(ok_quality)}"
        )
    write_result(NAME, quick, record)
    return record


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
