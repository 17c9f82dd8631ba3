"""Serving the scikit-learn tool's models: LightGBM's scikit-learn classes are scored by their booster.

``LGBMClassifier.predict_proba`` validates its input the scikit-learn way on every call (more than half of a
single row's time); a serving worker has checked the rows against the version's signature already, so
:class:`LightGBMServed` asks the fitted booster directly -- what the wrapper itself calls after its checks,
with the same defaults (the best iteration, the training's pandas categories); JSON records of numbers
go to it as an array, without a table. Every other estimator is served as
:class:`~automl_orchestra.engines.core.serving.ServedModel` serves it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.engines.core.serving import Answer, ServedModel

LIGHTGBM_CLASSES = ("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor")


class LightGBMServed(ServedModel):
    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        return self._answer(np.asarray(self.model.booster_.predict(rows)), probabilities)

    def takes_arrays(self, columns: list[str]) -> bool:
        # Positional rows are only the same rows when the model was trained on exactly these columns, in this
        # order, none of them a pandas category (the booster maps those from their labels).
        names = getattr(self.model, "feature_names_in_", None)
        return names is not None and list(map(str, names)) == columns and not self.model.booster_.pandas_categorical

    def predict_array(self, rows: np.ndarray, probabilities: bool) -> Answer:
        return self._answer(np.asarray(self.model.booster_.predict(rows)), probabilities)

    def _answer(self, values: np.ndarray, probabilities: bool) -> Answer:
        if self.task != "classification":
            return Answer(values)
        classes = np.asarray(self.model.classes_)
        # A binary booster answers the second class's probability, a multiclass one a column per class.
        scores = np.column_stack([1.0 - values, values]) if values.ndim == 1 else values
        predictions = classes[np.argmax(scores, axis=1)]
        return Answer(predictions, scores if probabilities else None, classes.tolist() if probabilities else None)


def served(model: Any) -> ServedModel:
    """The model as a serving worker calls it: by its booster for LightGBM with a built-in objective."""
    kind = type(model)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if name in LIGHTGBM_CLASSES and not callable(getattr(model, "objective", None)):
        return LightGBMServed(model)
    return ServedModel(model)
