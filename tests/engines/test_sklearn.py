"""The scikitlearn tool on breast_cancer: model -> train -> predict/evaluate, searches, transforms, plots,
and the limits of what a request may import or call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.calls import call_method, import_allowed
from tests.engines.conftest import Harness


@pytest.fixture
def cancer(harness: Harness) -> Harness:
    data = load_breast_cancer(as_frame=True)
    features, target = data.data, data.target.to_frame("target")
    harness.put("train_x", features.iloc[::2].reset_index(drop=True))
    harness.put("train_y", target.iloc[::2].reset_index(drop=True))
    harness.put("test_x", features.iloc[1::2].reset_index(drop=True))
    harness.put("test_y", target.iloc[1::2].reset_index(drop=True))
    return harness


def fitted_model(h: Harness, module: str = "sklearn.ensemble", cls: str = "RandomForestClassifier") -> None:
    h.run(
        "model",
        "scikitlearn",
        {"modulePath": module, "class": cls, "classParameters": {"n_estimators": 30, "random_state": 0}},
        name="model",
    )
    params = {"parentName": "model", "methodParameters": {"X": "$train_x", "y": "$train_y"}}
    h.run("train", "scikitlearn", params, name="trained", inputs=["model", "train_x", "train_y"])


def test_model_train_predict_evaluate(cancer: Harness) -> None:
    model = cancer.run(
        "model",
        "scikitlearn",
        {
            "modulePath": "sklearn.ensemble",
            "class": "GradientBoostingClassifier",
            "classParameters": {"n_estimators": 40},
        },
        name="model",
    )
    assert model.metadata["class"] == "sklearn.ensemble.GradientBoostingClassifier"
    assert model.metadata["estimatorParameters"]["n_estimators"] == 40
    trained = cancer.run(
        "train",
        "scikitlearn",
        {"parentName": "model", "methodParameters": {"X": "$train_x", "y": "$train_y"}},
        name="trained",
        inputs=["model", "train_x", "train_y"],
    )
    assert trained.ref.kind == "object" and trained.metadata["method"] == "fit"
    predicted = cancer.run(
        "predict",
        "scikitlearn",
        {"parentName": "trained", "methodParameters": {"X": "$test_x"}},
        name="pred",
        inputs=["trained", "test_x"],
    )
    frame = predicted.load()
    assert list(frame.columns) == ["prediction"] and len(frame) == 284
    truth = cancer.output("test_y")["target"]
    assert (frame["prediction"] == truth).mean() > 0.9
    evaluated = cancer.run(
        "evaluate",
        "scikitlearn",
        {
            "parentName": "trained",
            "metrics": ["accuracy", "f1", "roc_auc"],
            "methodParameters": {"X": "$test_x", "y": "$test_y"},
        },
        name="metrics",
        inputs=["trained", "test_x", "test_y"],
    )
    assert set(evaluated.result.metrics) == {"accuracy", "f1", "roc_auc"}
    assert evaluated.load() == evaluated.result.metrics and evaluated.result.metrics["roc_auc"] > 0.95
    scored = cancer.run(
        "evaluate",
        "scikitlearn",
        {"parentName": "trained", "methodParameters": {"X": "$test_x", "y": "$test_y.target"}},
        name="score",
        inputs=["trained", "test_x", "test_y"],
    )
    assert scored.result.metrics["score"] == pytest.approx(evaluated.result.metrics["accuracy"])


def test_predict_proba_columns_are_the_classes(cancer: Harness) -> None:
    fitted_model(cancer)
    proba = cancer.run(
        "predict",
        "scikitlearn",
        {"parentName": "trained", "method": "predict_proba", "methodParameters": {"X": "$test_x"}},
        name="proba",
        inputs=["trained", "test_x"],
    ).load()
    assert list(proba.columns) == ["0", "1"] and np.allclose(proba.sum(axis=1), 1.0)


def test_grid_search_takes_a_model_reference(cancer: Harness) -> None:
    cancer.run(
        "model",
        "scikitlearn",
        {"modulePath": "sklearn.tree", "class": "DecisionTreeClassifier", "classParameters": {"random_state": 0}},
        name="base",
    )
    search = cancer.run(
        "model",
        "scikitlearn",
        {
            "modulePath": "sklearn.model_selection",
            "class": "GridSearchCV",
            "classParameters": {"estimator": "$base", "param_grid": {"max_depth": [2, 4]}, "cv": 3},
        },
        name="search",
        inputs=["base"],
    )
    assert search.metadata["estimatorParameters"]["n_jobs"] == 1  # the step's cpus, set because n_jobs was not given
    tuned = cancer.run(
        "tune",
        "scikitlearn",
        {"parentName": "search", "methodParameters": {"X": "$train_x", "y": "$train_y"}},
        name="tuned",
        inputs=["search", "train_x", "train_y"],
    )
    assert tuned.metadata["bestParams"]["max_depth"] in (2, 4)
    assert 0.8 < tuned.result.metrics["bestScore"] <= 1.0


def test_transform_names_the_output_columns(cancer: Harness) -> None:
    cancer.run(
        "model", "scikitlearn", {"modulePath": "sklearn.preprocessing", "class": "StandardScaler"}, name="scaler"
    )
    scaled = cancer.run(
        "transform",
        "scikitlearn",
        {"parentName": "scaler", "methodParameters": {"X": "$train_x"}},
        name="scaled",
        inputs=["scaler", "train_x"],
    ).load()
    assert list(scaled.columns) == list(cancer.output("train_x").columns)
    assert abs(scaled.mean()).max() < 1e-6


def test_explore_permutation_importance_and_a_plot(cancer: Harness) -> None:
    fitted_model(cancer)
    importance = cancer.run(
        "explore",
        "scikitlearn",
        {
            "modulePath": "sklearn.inspection",
            "method": "permutation_importance",
            "methodParameters": {
                "estimator": "$trained",
                "X": "$test_x",
                "y": "$test_y",
                "n_repeats": 2,
                "random_state": 0,
            },
        },
        name="importance",
        inputs=["trained", "test_x", "test_y"],
    )
    assert importance.ref.kind == "arrays" and "importances_mean" in (importance.ref.attributes or [])
    assert importance.load()["importances_mean"].shape == (30,)
    plot = cancer.run(
        "explore",
        "scikitlearn",
        {
            "modulePath": "sklearn.metrics",
            "class": "ConfusionMatrixDisplay",
            "method": "from_estimator",
            "methodParameters": {"estimator": "$trained", "X": "$test_x", "y": "$test_y"},
        },
        name="plot",
        inputs=["trained", "test_x", "test_y"],
    )
    assert plot.ref.kind == "json" and sorted(plot.ref.files) == ["data.json", "plot.png"]
    assert (plot.files / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert plot.load() == {"plot": "plot.png", "type": "ConfusionMatrixDisplay"}


def test_thread_counts_follow_the_step_cpus(harness: Harness) -> None:
    lgbm = harness.run(
        "model", "scikitlearn", {"modulePath": "lightgbm", "class": "LGBMClassifier"}, name="lgbm", cpus=2
    )
    assert lgbm.metadata["estimatorParameters"]["n_jobs"] == 2
    xgb = harness.run(
        "model",
        "scikitlearn",
        {"modulePath": "xgboost", "class": "XGBRegressor", "classParameters": {"nthread": 1}},
        name="xgb",
        cpus=2,
    )
    assert "n_jobs" not in {k: v for k, v in xgb.metadata["estimatorParameters"].items() if v is not None}


@pytest.mark.parametrize(
    ("module", "cls", "message"),
    [
        ("os", "system", "module 'os' is not allowed"),
        ("sklearnx", "A", "module 'sklearnx' is not allowed"),
        ("sklearn.base", "np.load", "comes from 'numpy', outside the allowed modules"),
        ("sklearn.base", "_fit_context", "public identifiers"),
        ("sklearn.base", "BaseEstimator.__subclasses__", "public identifiers"),
        ("sklearn._config", "get_config", "public identifiers"),
        ("sklearn.ensemble", "RandomForestClassifer", "did you mean"),
        ("sklearn.nonexistent", "A", "cannot import"),
    ],
)
def test_disallowed_imports(harness: Harness, module: str, cls: str, message: str) -> None:
    # The reflection rule itself, whatever reaches it (engines also import dotted names they build).
    with pytest.raises(StepError, match=message):
        import_allowed(module, cls, ["sklearn", "lightgbm", "xgboost"])
    # A step is refused by that rule, or before it by its request model (ModelBody's class is one public name).
    with pytest.raises(StepError, match=f"{message}|do not fit model/scikitlearn: class"):
        harness.run("model", "scikitlearn", {"modulePath": module, "class": cls})


def test_private_methods_are_refused() -> None:
    target = import_allowed("sklearn.linear_model", "LinearRegression", ["sklearn"])()
    for method in ("__reduce__", "_validate_params", "fit.__globals__"):
        with pytest.raises(StepError, match="public method name"):
            call_method(target, method, {})
    with pytest.raises(StepError, match="has no method 'fitt'; did you mean"):
        call_method(target, "fitt", {})


def test_one_column_frame_targets_become_series(harness: Harness) -> None:
    harness.put("x", pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}))
    harness.put("y", pd.DataFrame({"t": [0.0, 2.0, 4.0, 6.0]}))
    harness.run("model", "scikitlearn", {"modulePath": "sklearn.linear_model", "class": "LinearRegression"}, name="lr")
    harness.run(
        "train",
        "scikitlearn",
        {"parentName": "lr", "methodParameters": {"X": "$x", "y": "$y"}},
        name="fit",
        inputs=["lr", "x", "y"],
    )
    assert harness.output("fit").coef_.shape == (1,)  # a 2-D y would have given shape (1, 1)
