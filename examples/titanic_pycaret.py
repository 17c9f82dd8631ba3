"""Titanic with PyCaret (its own engine environment) against a live AutoML Orchestra server, three ways:

1. the Learning Orchestra seed's Appendix A pipeline as one ``builder/pycaret`` step (the code as written;
   PyCaret 2's ``silent=True`` is accepted with a warning in the step's log), through ``BuilderPycaret``;
2. the same pipeline as atomic steps: model -> setup -> compare -> tune -> finalize -> predict, each one
   re-executable with PATCH;
3. the declarative ``automl/pycaret`` step (identifier-like and free-text columns excluded automatically).

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/titanic_pycaret.py [--budget 120] [--skip-builder]

For each it prints the holdout accuracy and F1 (PyCaret's 30 % split, session_id=1), the accuracy on the
418 Kaggle test rows (labels from ``titanic/test_labels.csv``, matched by PassengerId) and the wall time.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import (
    TARGET,
    client_side_accuracy,
    connect,
    format_table,
    ingest_titanic,
    local_labels,
    read_rows,
    reset,
    stopwatch,
)

from automl_orchestra.client import (
    AutoMLPycaret,
    BuilderPycaret,
    Client,
    EvaluatePycaret,
    ModelPycaret,
    PredictPycaret,
    TrainPycaret,
    TransformPycaret,
    TunePycaret,
)

PREFIX = "titanic_pycaret"

# Appendix A, lines 37-65, unchanged (PyCaret 3 removed ``silent``; the server drops it with a warning). The
# lines after the marker only report what the seed printed by hand: holdout metrics and the Kaggle test
# predictions.
APPENDIX_A = """
from pycaret import classification

clas = classification.setup(
    data=train,
    target='Survived',
    ignore_features=['Ticket'],
    numeric_features=['Age', 'Fare', 'Parch', 'Pclass', 'SibSp'],
    session_id = 1,
    silent=True)

best = classification.compare_models(turbo = False)

best_tuned = classification.tune_model(
    best,
    n_iter = 100,
    choose_better=True)

best_tuned = classification.create_model(best_tuned)

score = classification.pull()
score.to_csv('score', sep='\\t', encoding='utf-8')

final_gbr = classification.finalize_model(best_tuned)

classification.save_model(final_gbr, 'titanic_pycaret')

response = None
# ---- reporting (not in the seed) ----
classification.predict_model(best_tuned)
holdout = classification.pull().iloc[0]
kaggle = classification.predict_model(final_gbr, data=test)
response = {
    "model": type(best_tuned).__name__,
    "holdoutAccuracy": float(holdout["Accuracy"]),
    "holdoutF1": float(holdout["F1"]),
    "predictions": dict(zip(kaggle["PassengerId"].astype(int).astype(str), kaggle["prediction_label"].astype(int))),
}
"""
SETUP = {
    "target": TARGET,
    "ignore_features": ["Ticket"],
    "numeric_features": ["Age", "Fare", "Parch", "Pclass", "SibSp"],
    "session_id": 1,
}
SUMMARY = [
    ("way", "pipeline", ""),
    ("model", "model", ""),
    ("holdoutAccuracy", "holdout accuracy", ".4f"),
    ("holdoutF1", "holdout F1", ".4f"),
    ("kaggle", "Kaggle-test accuracy", ".4f"),
    ("wall", "wall s", ".1f"),
]


def step(name: str) -> str:
    return f"{PREFIX}_{name}"


def labelled_accuracy(rows: list[dict[str, Any]]) -> float:
    """Accuracy of PyCaret's ``prediction_label`` against the Kaggle labels, matched by PassengerId."""
    labels = local_labels()
    if len(rows) != len(labels):
        raise SystemExit(f"{len(rows)} predictions for {len(labels)} labelled test rows")
    return sum(labels[int(row["PassengerId"])] == int(row["prediction_label"]) for row in rows) / len(labels)


def builder(client: Client, train: str, test: str) -> dict[str, Any]:
    with stopwatch() as elapsed:
        runner = BuilderPycaret(client=client)
        runner.run_pycaret_async(
            name=step("builder"), parameters={"train": f"${train}", "test": f"${test}"}, code=APPENDIX_A
        )
        runner.wait(step("builder"), 3600)
        result = runner.search_execution_content(step("builder"))
    report = result[1] if isinstance(result, list) else result
    rows = [{"PassengerId": pid, "prediction_label": label} for pid, label in report.pop("predictions").items()]
    kaggle = labelled_accuracy(rows)
    print("Appendix A score grid (search_builder_register_predictions('score')):")
    print(runner.search_builder_register_predictions(file_name="score", name=step("builder")))
    return {"way": "builder/pycaret (Appendix A)", **report, "kaggle": kaggle, "wall": elapsed()}


def atomic(client: Client, train: str, test: str) -> dict[str, Any]:
    with stopwatch() as elapsed:
        ModelPycaret(client=client).create_experiment_sync(step("experiment"))
        TransformPycaret(client=client).create_method_sync(
            step("setup"), None, step("experiment"), "setup", {"data": f"${train}", **SETUP}
        )
        TrainPycaret(client=client).create_method_sync(
            step("best"), None, step("setup"), "compare_models", {"turbo": False}
        )
        TunePycaret(client=client).create_method_sync(
            step("tuned"),
            None,
            step("setup"),
            "tune_model",
            {"estimator": f"${step('best')}", "n_iter": 100, "choose_better": True},
        )
        holdout = EvaluatePycaret(client=client).create_method_sync(
            step("holdout"), None, step("setup"), "predict_model", {"estimator": f"${step('tuned')}"}
        )
        EvaluatePycaret(client=client).create_method_sync(
            step("final"), None, step("setup"), "finalize_model", {"estimator": f"${step('tuned')}"}
        )
        PredictPycaret(client=client).create_method_sync(
            step("pred"), None, step("setup"), "predict_model", {"estimator": f"${step('final')}", "data": f"${test}"}
        )
    metrics = holdout["metrics"]
    return {
        "way": "atomic steps",
        "model": str(client.get(step("tuned")).get("class", "")).rsplit(".", 1)[-1],
        "holdoutAccuracy": metrics["Accuracy"],
        "holdoutF1": metrics["F1"],
        "kaggle": labelled_accuracy(read_rows(client, step("pred"))),
        "wall": elapsed(),
    }


def automl(client: Client, train: str, test: str, budget: float) -> dict[str, Any]:
    with stopwatch() as elapsed:
        found = AutoMLPycaret(client=client).run_automl_sync(
            step("automl"), train, TARGET, "classification", time_budget=budget, metric="accuracy", seed=1
        )
        PredictPycaret(client=client).create_method_sync(
            step("automl_pred"), None, step("automl"), "predict", {"X": f"${test}"}
        )
    excluded = ", ".join(found.get("excludedColumns", {})) or "none"
    print(f"automl/pycaret excluded: {excluded}")
    return {
        "way": f"automl/pycaret ({budget:g} s)",
        "model": found["bestModel"],
        "holdoutAccuracy": found["metrics"]["holdout_Accuracy"],
        "holdoutF1": found["metrics"]["holdout_F1"],
        "kaggle": client_side_accuracy(client, step("automl_pred")),
        "wall": elapsed(),
    }


def main(budget: float, skip_builder: bool, skip_atomic: bool) -> None:
    with connect() as client:
        print(f"server {client.url}")
        reset(client, [step("train"), step("test"), step("labels"), step("experiment"), step("builder")])
        data = ingest_titanic(client, PREFIX)
        rows = []
        if not skip_builder:
            rows.append(builder(client, data.train, data.test))
        if not skip_atomic:
            rows.append(atomic(client, data.train, data.test))
        rows.append(automl(client, data.train, data.test, budget))
        print(f"\nPyCaret on Titanic:\n{format_table(rows, SUMMARY)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="automl/pycaret budget in seconds")
    parser.add_argument("--skip-builder", action="store_true", help="skip the Appendix A builder step")
    parser.add_argument("--skip-atomic", action="store_true", help="skip the atomic-steps pipeline")
    arguments = parser.parse_args()
    main(arguments.budget, arguments.skip_builder, arguments.skip_atomic)
