"""overhead: what the platform adds to each step of a small pipeline, beyond the step's own run time.

A 10-step Titanic pipeline (upload, dataType, 2 projections, histogram, model, train, predict, evaluate,
function) runs step after step, once as a warm-up (excluded) and then ``REPEATS`` times, on a fresh server
with ORCHESTRA_WORKERS=2 and the default warm pool. For every step:
overhead = (POST until the observe long-poll answers settled, seen by the client) - the run's ``wallS``
(``GET /steps/{name}/runs``: the worker's own time to load inputs, execute and publish the output).
That is HTTP, validation, the database, queueing and dispatch, taking a worker, recording the result and
waking the observer. Goal: p50 <= 100 ms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_orchestra.client import Client
from benchmarks._harness import (
    Server,
    StepTiming,
    datasets_dir,
    format_table,
    median,
    percentile,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    write_result,
)

NAME = "overhead"
REPEATS = 5
GOAL_P50_MS = 100.0
SERVER_ENV = {"ORCHESTRA_WORKERS": "2"}
FEATURES = ["Pclass", "Age", "SibSp", "Parch", "Fare"]
NUMERIC_TYPES = {"Age": "number", "Fare": "number", "Parch": "number", "Pclass": "number", "SibSp": "number"}
SUMMARY_CODE = "response = {str(k): float(v) for k, v in data.groupby('Pclass')['Survived'].mean().items()}"


def pipeline(client: Client, train_csv: Path, run: int) -> list[StepTiming]:
    """The 10 steps, one after the other; each waits for the previous one (each depends on earlier ones)."""
    n = f"ov{run}"
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("transform", "dataType", {"name": f"{n}_typed", "parentName": f"{n}_train", "types": NUMERIC_TYPES}),
        ("transform", "projection", {"name": f"{n}_X", "parentName": f"{n}_typed", "fields": FEATURES}),
        ("transform", "projection", {"name": f"{n}_y", "parentName": f"{n}_typed", "fields": ["Survived"]}),
        ("explore", "histogram", {"name": f"{n}_hist", "parentName": f"{n}_typed", "fields": ["Sex", "Age"]}),
        ("model", "scikitlearn", model_body(f"{n}_model")),
        ("train", "scikitlearn", method_body(f"{n}_fit", f"{n}_model", "fit", X=f"${n}_X", y=f"${n}_y.Survived")),
        ("predict", "scikitlearn", method_body(f"{n}_pred", f"{n}_fit", "predict", X=f"${n}_X")),
        ("evaluate", "scikitlearn", evaluate_body(f"{n}_eval", f"{n}_fit", X=f"${n}_X", y=f"${n}_y.Survived")),
        ("function", "python", {"name": f"{n}_summary", "code": SUMMARY_CODE, "parameters": {"data": f"${n}_typed"}}),
    ]
    timings = [run_step(client, "dataset", "csv", {"name": f"{n}_train"}, upload=train_csv)]
    timings += [run_step(client, service, tool, body) for service, tool, body in steps]
    return timings


def model_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "modulePath": "sklearn.ensemble",
        "class": "HistGradientBoostingClassifier",  # takes the missing ages as they are
        "classParameters": {"max_iter": 50, "random_state": 1},
    }


def method_body(name: str, parent: str, method: str, **parameters: str) -> dict[str, Any]:
    return {"name": name, "parentName": parent, "method": method, "methodParameters": parameters}


def evaluate_body(name: str, parent: str, **parameters: str) -> dict[str, Any]:
    return {**method_body(name, parent, "score", **parameters), "metrics": ["accuracy"]}


def by_kind(timings: list[StepTiming], value: Callable[[StepTiming], float]) -> dict[str, list[float]]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for timing in timings:
        grouped[timing.kind].append(value(timing))
    return grouped


def step_rows(timings: list[StepTiming]) -> list[dict[str, Any]]:
    overheads = by_kind(timings, lambda t: t.overhead_s * 1000)
    walls = by_kind(timings, lambda t: t.wall_s * 1000)
    return [
        {
            "kind": kind,
            "n": len(values),
            "wallMs": median(walls[kind]),
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "max": max(values),
        }
        for kind, values in overheads.items()
    ]


def rounded(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value


def main(quick: bool = False) -> dict[str, Any]:
    repeats = 2 if quick else REPEATS
    train_csv = datasets_dir() / "titanic" / "train.csv"
    section(f"overhead: 10-step Titanic pipeline, 1 warm-up + {repeats} measured runs, ORCHESTRA_WORKERS=2")
    with Server(env=SERVER_ENV) as server, server.client() as client:
        wait_for_warm_pool(server)
        warm_up = pipeline(client, train_csv, 0)
        runs = [pipeline(client, train_csv, run) for run in range(1, repeats + 1)]
    timings = [timing for run in runs for timing in run]
    overheads_ms = [timing.overhead_s * 1000 for timing in timings]
    p50, p95 = percentile(overheads_ms, 50), percentile(overheads_ms, 95)
    rows = step_rows(timings)
    columns = [
        ("kind", "step", ""),
        ("n", "n", "d"),
        ("wallMs", "run wallS ms (median)", ".1f"),
        ("p50", "overhead p50 ms", ".1f"),
        ("p95", "overhead p95 ms", ".1f"),
        ("max", "max ms", ".1f"),
    ]
    print(format_table(rows, columns))
    pipeline_s = [sum(t.total_s for t in run) for run in runs]
    print(f"warm-up pipeline {sum(t.total_s for t in warm_up):.2f} s (excluded); measured pipelines (s): ")
    print("  " + ", ".join(f"{seconds:.2f}" for seconds in pipeline_s))
    print(f"overhead per step over {len(overheads_ms)} steps: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"p50 {p50:.1f} ms (goal <= {GOAL_P50_MS:g} ms): {verdict(p50 <= GOAL_P50_MS)}")
    record = {
        "repeats": repeats,
        "serverEnv": SERVER_ENV,
        "p50Ms": round(p50, 1),
        "p95Ms": round(p95, 1),
        "meanMs": round(sum(overheads_ms) / len(overheads_ms), 1),
        "perStep": [{key: rounded(value) for key, value in row.items()} for row in rows],
        "pipelineS": [round(seconds, 3) for seconds in pipeline_s],
        "warmUpPipelineS": round(sum(t.total_s for t in warm_up), 3),
        "steps": [
            {"name": t.name, "kind": t.kind, "totalMs": round(t.total_s * 1000, 1), "wallMs": round(t.wall_s * 1000, 1)}
            for t in timings
        ],
        "goal": {"p50Ms": GOAL_P50_MS},
        "met": p50 <= GOAL_P50_MS,
    }
    write_result(NAME, quick, record)
    return record
