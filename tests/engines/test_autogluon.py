"""automl/autogluon and TabularPredictor by reflection for real (10 s budgets): the predictor lives in the
step's output (never ./AutogluonModels), threads follow the CPU allowance, predictions reload it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from automl_orchestra.engines.autogluon.engine import AutoGluonModel
from tests.data import titanic_like
from tests.engines.conftest import Harness


def test_automl_autogluon_predictor_in_the_output_and_predict(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    data = load_breast_cancer(as_frame=True).frame
    harness.put("cancer", data)
    started = time.monotonic()
    ran = harness.run(
        "automl",
        "autogluon",
        {"parentName": "cancer", "target": "target", "timeBudget": 10, "metric": "roc_auc", "seed": 1},
        name="auto",
        inputs=["cancer"],
        cpus=2,
    )
    assert time.monotonic() - started < 10 + 15
    meta = ran.metadata
    assert meta["metric"] == "roc_auc" and meta["problemType"] == "binary" and meta["bestScore"] > 0.9
    assert meta["timeLimit"] < 10 and (ran.files / "predictor" / "predictor.pkl").is_file()
    assert not (ran.ctx.work_dir / "AutogluonModels").exists() and not Path("AutogluonModels").exists()
    log = capfd.readouterr()
    assert "Fitting with cpus=2," in log.out + log.err  # num_cpus follows the step's allowance
    board = harness.run_derived(ran, "leaderboard")
    assert meta["bestLearner"] in set(board["learner"]) and board["score_val"].is_monotonic_decreasing
    model = ran.load()
    assert isinstance(model, AutoGluonModel) and model.classes == [0, 1]
    proba = model.predict_proba(data.head(30))
    assert proba.shape == (30, 2) and np.allclose(proba.sum(axis=1), 1.0)
    evaluated = harness.run(
        "evaluate",
        "autogluon",
        {"parentName": "auto", "methodParameters": {"X": "$cancer", "y": "$cancer.target"}, "metrics": ["roc_auc"]},
        name="eval",
        inputs=["auto", "cancer"],
    )
    assert evaluated.result.metrics["roc_auc"] > 0.95


def test_tabular_predictor_by_reflection_on_text_features(harness: Harness, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(titanic_like(tmp_path / "t.csv", rows=300))[["Survived", "Pclass", "Sex", "Age", "Fare"]]
    harness.put("titanic", frame)
    harness.run(
        "model",
        "autogluon",
        {"classParameters": {"label": "Survived", "eval_metric": "accuracy"}},
        name="predictor",
    )
    trained = harness.run(
        "train",
        "autogluon",
        {
            "parentName": "predictor",
            "methodParameters": {"train_data": "$titanic", "time_limit": 8, "hyperparameters": {"GBM": {}, "RF": {}}},
        },
        name="fitted",
        inputs=["predictor", "titanic"],
    )
    assert trained.metadata["bestModel"] and trained.metadata["evalMetric"] == "accuracy"
    predicted = harness.run(
        "predict",
        "autogluon",
        {"parentName": "fitted", "methodParameters": {"X": "$titanic"}},
        name="predicted",
        inputs=["fitted", "titanic"],
    ).load()
    assert list(predicted.columns) == ["prediction"] and (predicted["prediction"] == frame["Survived"]).mean() > 0.7
    refused = harness.context("model", "autogluon", {"classParameters": {"label": "x", "path": "/tmp/elsewhere"}})
    from automl_orchestra.contracts.errors import StepError
    from automl_orchestra.engines.autogluon.engine import AutoGluonEngine

    try:
        AutoGluonEngine().model(refused)
    except StepError as exc:
        assert "path" in str(exc)
    else:
        raise AssertionError("a user-chosen predictor path must be refused")
