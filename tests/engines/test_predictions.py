"""Predictions have one shape for every engine: a ``prediction`` column (or one column per class), one row
per row of ``X`` in its order, and never the caller's pandas index as a column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from automl_orchestra.engines.core.calls import PREDICTION, shape_output
from automl_orchestra.engines.core.values import load_value, save_value


class _NamedTargetModel:
    """A fitted model that knows its target's name, as the AutoML engines' models do."""

    target_name = "Survived"
    classes_ = np.array([0, 1])


def features() -> pd.DataFrame:
    # The rows of a test split: a shuffled, non-range index.
    return pd.DataFrame({"a": [0.1, 0.9, 0.4], "b": [1.0, 0.0, 1.0]}, index=[17, 3, 42])


def test_a_prediction_is_one_prediction_column_in_row_order(tmp_path: Path) -> None:
    frame = shape_output(np.array([1, 0, 1]), features(), target=_NamedTargetModel())

    assert list(frame.columns) == [PREDICTION] and frame[PREDICTION].tolist() == [1, 0, 1]
    ref = save_value(frame, tmp_path)
    assert ref.attributes == [PREDICTION]  # the index did not become a column
    assert load_value(ref, tmp_path)[PREDICTION].tolist() == [1, 0, 1]


def test_a_series_prediction_named_after_the_target_has_the_same_shape() -> None:
    frame = shape_output(pd.Series([0, 1, 1], name="Survived", index=[17, 3, 42]), features())
    assert list(frame.columns) == [PREDICTION] and isinstance(frame.index, pd.RangeIndex)


def test_probabilities_are_one_column_per_class_in_row_order() -> None:
    model = LogisticRegression().fit(features(), [0, 1, 0])
    frame = shape_output(model.predict_proba(features()), features(), target=model)
    assert list(frame.columns) == ["0", "1"] and isinstance(frame.index, pd.RangeIndex)
    assert np.allclose(frame.sum(axis=1), 1.0)


def test_transformed_features_keep_the_rows_index() -> None:
    frame = shape_output(np.ones((3, 2)), features(), transform=True)
    assert frame.index.tolist() == [17, 3, 42]
