"""LightGBM's scikit-learn models served by their booster answer exactly what the wrapper answers."""

from __future__ import annotations

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from automl_orchestra.engines.core.serving import ServedModel
from automl_orchestra.engines.sklearn.serving import LightGBMServed, served


def _frame(data: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(data, columns=[f"f{i}" for i in range(data.shape[1])])
    frame["kind"] = pd.Categorical(np.where(frame["f0"] > frame["f0"].median(), "high", "low"))
    return frame


@pytest.mark.parametrize("binary", [True, False])
def test_classifier_labels_and_probabilities_match_the_wrapper(binary: bool) -> None:
    iris = load_iris()
    rows, target = _frame(iris.data), np.asarray(iris.target_names)[iris.target]
    if binary:
        target = np.where(iris.target == 0, "setosa", "other")
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(rows, target)
    server = served(model)
    assert isinstance(server, LightGBMServed) and server.classifier
    answer = server.predict(rows, probabilities=True)
    assert list(answer.predictions) == list(model.predict(rows))
    assert np.allclose(answer.probabilities, model.predict_proba(rows))
    assert answer.classes == list(model.classes_)
    alone = server.predict(rows.iloc[:1], probabilities=False)
    assert alone.probabilities is None and list(alone.predictions) == list(model.predict(rows.iloc[:1]))


def test_regressor_values_match_the_wrapper() -> None:
    diabetes = load_diabetes()
    rows = _frame(diabetes.data)
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(rows, diabetes.target)
    answer = served(model).predict(rows, probabilities=False)
    assert np.allclose(answer.predictions, model.predict(rows))


def test_a_custom_objective_is_served_by_the_wrapper() -> None:
    def squared(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return y_pred - y_true, np.ones_like(y_true)

    diabetes = load_diabetes()
    model = lightgbm.LGBMRegressor(n_estimators=5, objective=squared, verbose=-1).fit(diabetes.data, diabetes.target)
    assert type(served(model)) is ServedModel


def test_a_record_of_numbers_goes_to_the_booster_as_an_array() -> None:
    iris = load_iris(as_frame=True)
    rows = iris.frame.drop(columns=["target"]).rename(columns=lambda name: name.replace(" ", "_"))
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(rows, iris.target)
    server = served(model)
    columns = list(rows.columns)
    assert server.takes_arrays(columns) and not server.takes_arrays(columns[::-1])
    by_array = server.predict_array(rows.to_numpy(dtype=float), probabilities=True)
    by_table = server.predict(rows, probabilities=True)
    assert list(by_array.predictions) == list(by_table.predictions)
    assert np.allclose(by_array.probabilities, by_table.probabilities)
    with_categories = served(lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(_frame(iris.data), iris.target))
    assert not with_categories.takes_arrays([*(f"f{i}" for i in range(4)), "kind"])
