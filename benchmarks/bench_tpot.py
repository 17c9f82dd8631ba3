"""tpot: ``automl/tpot`` through the API against the same TPOT call in a plain script, budget adherence, and
the seed's time-series service with its default settings.

1. Parity (GunPoint, tsfresh efficient features + selection computed once through the API): ``automl/tpot``
   with TPOT alone (``options.baselines: []``) vs ``TPOTClassifier(max_time_mins=budget, cv=5,
   scorers=["accuracy"], random_state=1, n_jobs=2)`` in a subprocess on the same feature table; test accuracy
   of both on the GunPoint test features; wall ratio = API step run / plain script.
2. Budget adherence: wall of every ``automl/tpot`` run / its ``timeBudget`` (goal 0.9-1.05).
3. The service defaults (``POST /timeseries/train`` with only a pipeline id; 120 s budget): GunPoint and
   BasicMotions test accuracy (goals 0.95 and 0.97), LP1 mean CV accuracy.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Server,
    datasets_dir,
    run_script,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    write_result,
)

NAME = "tpot"
SEED = 1
POPULATION = 20  # both sides; TPOT's default 50 makes one generation outlast short budgets
GOALS = {"wallRatio": 1.03, "budgetLow": 0.9, "budgetHigh": 1.05, "GunPoint": 0.95, "BasicMotions": 0.97}
PLAIN = """
import json, sys, time
import numpy as np, pandas as pd
from tpot import TPOTClassifier
if __name__ == "__main__":
    train, test, budget = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), float(sys.argv[3])
    population = int(sys.argv[4])
    features = [c for c in train.columns if c not in ("id", "label")]
    codes, classes = pd.factorize(train["label"], sort=True)
    started = time.perf_counter()
    model = TPOTClassifier(max_time_mins=budget / 60, cv=5, scorers=["accuracy"], scorers_weights=[1],
                           random_state=1, n_jobs=2, processes=False, verbose=0,
                           population_size=population)
    model.fit(np.nan_to_num(train[features].to_numpy(float)), codes)
    fit = time.perf_counter() - started
    predicted = classes[model.predict(np.nan_to_num(test[features].to_numpy(float)))]
    accuracy = float(np.mean(predicted.astype(str) == test["label"].astype(str).to_numpy()))
    print(json.dumps({"fitS": fit, "testAccuracy": accuracy}))
"""


def ucr(name: str, split: str) -> Path:
    return datasets_dir() / "timeseries" / name / f"{name}_{split}.ts"


def ts_labels(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("@data"))
    return [line.rsplit(":", 1)[-1].strip() for line in lines[start + 1 :] if line and not line.startswith("#")]


def gunpoint_features(client: Any) -> None:
    """gp_train_sel (features + label) and gp_test_feat (same features) through ordinary steps."""
    for split in ("TRAIN", "TEST"):
        run_step(client, "dataset", "timeseries", {"name": f"gp_{split.lower()}"}, upload=ucr("GunPoint", split))
    extract: dict[str, Any] = {"parentName": "gp_train", "method": "extract_features", "methodParameters": {}}
    run_step(client, "transform", "tsfresh", {"name": "gp_train_feat", **extract})
    selection = {"y": "$gp_train_labels"}
    body = {"name": "gp_train_sel", "parentName": "gp_train_feat", "method": "select_features"}
    run_step(client, "transform", "tsfresh", {**body, "methodParameters": selection})
    again = {"name": "gp_test_feat", "parentName": "gp_test", "methodParameters": {"featureSettings": "$gp_train_sel"}}
    run_step(client, "transform", "tsfresh", again)


def api_accuracy(client: Any, model: str, features: str, truth: list[str]) -> float:
    run_step(
        client,
        "predict",
        "tpot",
        {"name": f"{model}_pred", "parentName": model, "methodParameters": {"X": f"${features}"}},
    )
    predicted = [
        str(next(iter(row.values()))) for row in client.content("predict", "tpot", f"{model}_pred", limit=100)[1:]
    ]
    rows = client.content("predict", "tpot", f"{model}_pred", skip=100, limit=100)[1:]
    predicted += [str(next(iter(row.values()))) for row in rows]
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def parity(server: Server, client: Any, budget: float) -> dict[str, Any]:
    gunpoint_features(client)
    truth = ts_labels(ucr("GunPoint", "TEST"))
    body = {"name": "gp_tpot", "parentName": "gp_train_sel", "target": "label", "timeBudget": budget, "cv": 5,
            "scoring": "accuracy", "seed": SEED, "excludeColumns": ["id"], "options": {"baselines": []},
            "populationSize": POPULATION,
            "limits": {"cpus": 2, "timeoutS": budget * 1.5 + 60}}  # fmt: skip
    timing = run_step(client, "automl", "tpot", body)
    api = {"runWallS": timing.wall_s, "testAccuracy": api_accuracy(client, "gp_tpot", "gp_test_feat", truth)}
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name in ("gp_train_sel", "gp_test_feat"):
            path = Path(folder) / f"{name}.parquet"
            path.write_bytes(client.read_artifact(name, "data.parquet"))
            paths.append(path)
        test = paths[1]
        _attach_labels(test, truth)
        script = Path(folder) / "plain_tpot.py"
        script.write_text(PLAIN)
        plain_run = run_script([str(script), str(paths[0]), str(test), str(budget), str(POPULATION)])
    plain = {"wallS": plain_run.wall_s, **json.loads(plain_run.stdout.strip().splitlines()[-1])}
    return {"budgetS": budget, "api": api, "plain": plain, "wallRatio": api["runWallS"] / plain["wallS"]}


def _attach_labels(path: Path, truth: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.append_column("label", pa.array(truth)), path)


def service_defaults(client: Any) -> dict[str, Any]:
    from automl_orchestra.client import TimeSeriesService

    ts = TimeSeriesService(client=client)
    results: dict[str, Any] = {}
    for name in ("GunPoint", "BasicMotions"):
        started = time.perf_counter()
        report = ts.train(ucr(name, "TRAIN"), None, {"pipeline_id": name.lower()})
        predicted = ts.predict(name.lower(), ucr(name, "TEST"))
        truth = ts_labels(ucr(name, "TEST"))
        accuracy = sum(predicted[str(i)] == label for i, label in enumerate(truth)) / len(truth)
        results[name] = _service_row(client, report, started) | {"testAccuracy": accuracy}
    lp1 = datasets_dir() / "timeseries" / "robot_execution_failures"
    started = time.perf_counter()
    report = ts.train(lp1 / "lp1_long.csv", lp1 / "lp1_labels.csv", {"pipeline_id": "lp1"})
    results["LP1"] = _service_row(client, report, started)
    return results


def _service_row(client: Any, report: dict[str, Any], started: float) -> dict[str, Any]:
    runs = client.runs(f"ts-{report['modelId']}")
    return {
        "trainCallS": time.perf_counter() - started,
        "automlRunS": runs[-1]["wallS"],
        "budgetRatio": runs[-1]["wallS"] / 120.0,
        "meanCvAccuracy": report["mean_cv_accuracy"],
        "meanCvRocAuc": report.get("mean_cv_roc_auc"),
        "bestLearner": report["bestLearner"],
        "trainShape": report["trainShape"],
    }


def main(quick: bool = False) -> dict[str, Any]:
    budget = 20.0 if quick else 60.0
    section(f"tpot: automl/tpot vs plain TPOT on GunPoint features ({budget:g} s), then service defaults (120 s)")
    with Server() as server, server.client(timeout=1200) as client:
        wait_for_warm_pool(server)
        record: dict[str, Any] = {"parity": parity(server, client, budget)}
        if not quick:
            record["service"] = service_defaults(client)
    p = record["parity"]
    ratios = [p["api"]["runWallS"] / budget] + [row["budgetRatio"] for row in record.get("service", {}).values()]
    print(f"parity: API test accuracy {p['api']['testAccuracy']:.4f} vs plain {p['plain']['testAccuracy']:.4f}")
    print(f"wall ratio API run / plain {p['wallRatio']:.4f} (goal <= 1.03): {verdict(p['wallRatio'] <= 1.03)}")
    ok_budget = all(GOALS["budgetLow"] <= r <= GOALS["budgetHigh"] for r in ratios)
    print(f"budget adherence wall/timeBudget {[round(r, 3) for r in ratios]} (goal 0.9-1.05): {verdict(ok_budget)}")
    for name, row in record.get("service", {}).items():
        goal = GOALS.get(name)
        shown = f"test accuracy {row['testAccuracy']:.4f}" if "testAccuracy" in row else ""
        met = f" (goal >= {goal}): {verdict(row['testAccuracy'] >= goal)}" if goal else ""
        print(f"service {name}: mean CV accuracy {row['meanCvAccuracy']:.4f} {shown}{met}; {row['bestLearner']}")
    record["budgetRatios"] = ratios
    write_result(NAME, quick, record)
    return record


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
