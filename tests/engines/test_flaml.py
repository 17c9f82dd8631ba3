"""automl/flaml end to end (real searches with a 5 s budget), the FlamlModel wrapper, the column rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.jobs import WorkerPolicy
from automl_orchestra.engines.core.automl import bounded_budget
from automl_orchestra.engines.core.columns import select_features
from automl_orchestra.engines.flaml.engine import FlamlModel
from tests.data import titanic_like
from tests.engines.conftest import Harness


def test_automl_on_breast_cancer(harness: Harness) -> None:
    data = load_breast_cancer(as_frame=True)
    harness.put("cancer", data.frame)
    started = time.monotonic()
    ran = harness.run(
        "automl",
        "flaml",
        {"parentName": "cancer", "target": "target", "task": "classification", "timeBudget": 5, "metric": "roc_auc"},
        name="auto",
        inputs=["cancer"],
        cpus=2,
    )
    assert time.monotonic() - started < 5 + 10  # the budget is respected (plus loading and saving)
    meta = ran.metadata
    assert meta["metric"] == "roc_auc" and meta["trainRows"] == 569 and meta["timeBudget"] == 5
    # A real model, also on a busy machine where 5 s buys FLAML only its first low-cost trials.
    assert meta["bestScore"] == pytest.approx(1 - meta["bestLoss"]) and meta["bestScore"] > 0.9
    assert meta["columns"]["excluded"] == {} and len(meta["columns"]["used"]) == 30
    assert ran.result.metrics["bestScore"] == meta["bestScore"]
    board = harness.run_derived(ran, "leaderboard")
    assert len(board) >= 1 and board["learner"].iloc[0] == meta["bestLearner"]
    assert board["bestLoss"].is_monotonic_increasing and (board["iterations"] >= 1).all()
    assert isinstance(json.loads(board["bestConfig"].iloc[0]), dict)
    model = ran.load()
    assert isinstance(model, FlamlModel) and model.best_estimator == meta["bestLearner"]
    predicted = harness.run(
        "predict",
        "flaml",
        {"parentName": "auto", "methodParameters": {"X": "$cancer"}},
        name="pred",
        inputs=["auto", "cancer"],
    ).load()
    assert list(predicted.columns) == ["prediction"]  # one shape for every engine, not the target's name
    assert (predicted["prediction"] == data.frame["target"]).mean() > 0.9


def test_automl_on_titanic_excludes_ids_and_names(harness: Harness, tmp_path: Path) -> None:
    train = titanic_like(tmp_path / "train.csv", rows=400, seed=0)
    test = titanic_like(tmp_path / "test.csv", rows=150, seed=1, first_id=1000)
    harness.policy = WorkerPolicy(import_dirs=[str(tmp_path)])
    for name, path in (("train", train), ("test", test)):
        harness.run("dataset", "csv", {"source": {"kind": "path", "path": str(path)}}, name=name)
    ran = harness.run(
        "automl",
        "flaml",
        {"parentName": "train", "target": "Survived", "timeBudget": 5, "metric": "accuracy", "seed": 3},
        name="auto",
        inputs=["train"],
        cpus=2,
    )
    excluded = ran.metadata["columns"]["excluded"]
    assert set(excluded) == {"PassengerId", "Name", "Ticket", "Cabin"}
    assert excluded["PassengerId"].startswith("identifier: a sequence")
    assert "non-missing rows" in excluded["Cabin"]  # mostly blank, but nearly unique where present
    assert {"Sex", "Pclass", "Age", "Fare"} <= set(ran.metadata["columns"]["used"])
    assert not harness.run_derived(ran, "leaderboard").empty
    # The test table still has the id, the name and the target: the wrapper picks its own columns.
    evaluated = harness.run(
        "evaluate",
        "flaml",
        {
            "parentName": "auto",
            "metrics": ["accuracy", "roc_auc"],
            "methodParameters": {"X": "$test", "y": "$test.Survived"},
        },
        name="eval",
        inputs=["auto", "test"],
    )
    assert evaluated.result.metrics["accuracy"] > 0.6 and evaluated.result.metrics["roc_auc"] > 0.6
    proba = harness.run(
        "predict",
        "flaml",
        {"parentName": "auto", "method": "predict_proba", "methodParameters": {"X": "$test"}},
        name="proba",
        inputs=["auto", "test"],
    ).load()
    assert list(proba.columns) == ["0", "1"] and np.allclose(proba.sum(axis=1), 1.0)


def test_model_and_train_with_flaml_automl(harness: Harness) -> None:
    iris = load_iris(as_frame=True)
    harness.put("x", iris.data)
    harness.put("y", iris.target.to_frame("species"))
    model = harness.run("model", "flaml", {"classParameters": {"estimator_list": ["lgbm"]}}, name="automl", cpus=2)
    assert model.metadata["class"] == "flaml.AutoML"
    trained = harness.run(
        "train",
        "flaml",
        {
            "parentName": "automl",
            "methodParameters": {"X_train": "$x", "y_train": "$y", "task": "classification", "time_budget": 2},
        },
        name="trained",
        inputs=["automl", "x", "y"],
    )
    assert trained.metadata["bestLearner"] == "lgbm" and "bestLoss" in trained.result.metrics
    predicted = harness.run(
        "predict",
        "flaml",
        {"parentName": "trained", "methodParameters": {"X": "$x"}},
        name="pred",
        inputs=["trained", "x"],
    ).load()
    assert (predicted["prediction"] == iris.target).mean() > 0.9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target": "nope"}, "target 'nope' is not a column"),
        ({"target": "y", "task": "ranking"}, "task: Input should be 'classification' or 'regression', not 'ranking'"),
        ({"target": "y", "options": {"time_budget": 3}}, r"options \['time_budget'\] are set by the step"),
        ({"target": "y", "excludeColumns": ["a"], "keepColumns": ["a"]}, "listed in both"),
        ({"target": "y", "excludeColumns": ["zz"]}, "excludeColumns: unknown column"),
    ],
)
def test_automl_parameter_errors(harness: Harness, params: dict, message: str) -> None:
    harness.put("d", pd.DataFrame({"a": [1, 2], "y": [0, 1]}))
    with pytest.raises(StepError, match=message):
        harness.run("automl", "flaml", {"parentName": "d", **params}, inputs=["d"])


def test_budget_leaves_headroom_under_the_step_timeout() -> None:
    assert bounded_budget(60, 3600) == 60
    assert bounded_budget(600, 300) == 270
    assert bounded_budget(60, 30) == 20
    assert bounded_budget(60, 5) == 1


def test_column_rules() -> None:
    rows = 40
    frame = pd.DataFrame(
        {
            "id": np.arange(100, 100 + rows),
            "code": np.arange(rows) * 3,  # distinct integers, but not a gapless sequence: a real feature
            "name": [f"person {i}" for i in range(rows)],
            "city": ["a", "b", "c", "d"] * (rows // 4),
            "empty": [None] * rows,
            "x": np.linspace(0, 1, rows),
            # 22 present values, 15 distinct: a sparse code like Titanic's Cabin (a leak when target-encoded)
            "cabin": [f"C{i % 15}" for i in range(22)] + [None] * (rows - 22),
        }
    )
    decision = select_features(frame)
    assert decision.used == ["code", "city", "x"]
    assert set(decision.excluded) == {"id", "name", "empty", "cabin"}
    assert decision.excluded["cabin"] == "identifier or free text: 15 distinct values in its 22 non-missing rows"
    kept = select_features(frame, keep=["name"], exclude=["x"])
    assert kept.used == ["code", "name", "city"] and kept.excluded["x"] == "listed in excludeColumns"
    assert select_features(frame, auto_exclude=False).used == list(frame.columns)
    head = select_features(frame.head(10)).used  # too few rows to judge
    assert head == ["id", "code", "name", "city", "x", "cabin"]
