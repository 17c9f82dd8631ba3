"""PyCaret's other experiment types through the same steps: regression on house prices, clustering and
anomaly detection on German credit, against a live AutoML Orchestra server.

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/pycaret_tasks.py

* regression: ``house_prices/train.csv`` -> RegressionExperiment -> setup (Id ignored, log-target off) ->
  compare_models (5 folds, 3 models) -> prints the CV RMSE / R2 of the best model and its holdout R2;
* clustering: ``german_credit`` numeric columns -> ClusteringExperiment -> setup -> create_model('kmeans')
  -> assign_model -> prints the cluster sizes and the silhouette;
* anomaly detection: the same rows -> AnomalyExperiment -> create_model('iforest') -> assign_model ->
  prints how many rows were flagged.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from _common import datasets_dir, read_rows, reset, stopwatch

from automl_orchestra.client import (
    Client,
    DatasetCsv,
    EvaluatePycaret,
    ModelPycaret,
    OrchestraError,
    PredictPycaret,
    TrainPycaret,
    TransformPycaret,
)

PREFIX = "pycaret_tasks"


def step(name: str) -> str:
    return f"{PREFIX}_{name}"


def data_file(*parts: str) -> Path:
    path = datasets_dir().joinpath(*parts)
    if not path.is_file():
        raise SystemExit(f"{path} not found (see {datasets_dir() / 'README.md'})")
    return path


# german.data: 20 attributes (A1..A20, codes and numbers) and the class, space-separated, no header.
GERMAN_COLUMNS = [f"A{i}" for i in range(1, 21)] + ["credit"]


def experiment(client: Client, name: str, kind: str, setup: dict[str, Any]) -> None:
    ModelPycaret(client=client).create_experiment_sync(step(name), f"{kind}Experiment")
    TransformPycaret(client=client).create_method_sync(step(f"{name}_setup"), None, step(name), "setup", setup)


def regression(client: Client) -> None:
    with stopwatch() as elapsed:
        DatasetCsv(client=client).upload_dataset_sync(step("houses"), data_file("house_prices", "train.csv"))
        setup = {"data": f"${step('houses')}", "target": "SalePrice", "ignore_features": ["Id"], "session_id": 1}
        experiment(client, "regression", "Regression", {**setup, "fold": 5})
        best = TrainPycaret(client=client).create_method_sync(
            step("houses_best"), None, step("regression_setup"), "compare_models", {"include": ["lr", "rf", "lightgbm"]}
        )
        holdout = EvaluatePycaret(client=client).create_method_sync(
            step("houses_holdout"),
            None,
            step("regression_setup"),
            "predict_model",
            {"estimator": f"${step('houses_best')}"},
        )
    cv = best["metrics"]
    print(
        f"regression (house prices): best {best.get('class', '').rsplit('.', 1)[-1]}, CV RMSE {cv['RMSE']:.0f}, "
        f"CV R2 {cv['R2']:.4f}, holdout R2 {holdout['metrics']['R2']:.4f}; {elapsed():.1f} s"
    )


def unsupervised(client: Client) -> None:
    with stopwatch() as elapsed:
        DatasetCsv(client=client).upload_dataset_sync(
            step("credit"),
            data_file("german_credit", "german.data"),
            separator=" ",
            header="false",
            columns=",".join(GERMAN_COLUMNS),
        )
        for kind, estimator, column in (("Clustering", "kmeans", "Cluster"), ("Anomaly", "iforest", "Anomaly")):
            name = kind.lower()
            setup = {"data": f"${step('credit')}", "ignore_features": ["credit"], "session_id": 1}
            experiment(client, name, kind, setup)
            model = TrainPycaret(client=client).create_method_sync(
                step(f"{name}_model"), None, step(f"{name}_setup"), "create_model", {"estimator": estimator}
            )
            PredictPycaret(client=client).create_method_sync(
                step(f"{name}_assigned"),
                None,
                step(f"{name}_setup"),
                "assign_model",
                {"model": f"${step(f'{name}_model')}"},
            )
            counts = Counter(str(row[column]) for row in read_rows(client, step(f"{name}_assigned")))
            scores = ", ".join(f"{k} {v:.4f}" for k, v in model["metrics"].items())
            print(f"{name} (German credit, {estimator}): {dict(sorted(counts.items()))}; {scores or 'no metrics'}")
    print(f"clustering + anomaly detection: {elapsed():.1f} s")


def main() -> None:
    client = Client(timeout=60.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); start one or set ORCHESTRA_URL") from exc
    with client:
        reset(client, [step("houses"), step("credit"), step("regression"), step("clustering"), step("anomaly")])
        regression(client)
        unsupervised(client)


if __name__ == "__main__":
    main()
