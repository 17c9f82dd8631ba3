"""What ``model/*`` stores before training, and the one base of every model an ``automl/*`` step stores.

:class:`AutoMLModel` is a scikit-learn estimator (classifier or regressor tags, ``score``), so ``evaluate``
metrics and the comparison treat every engine's model alike. An engine's wrapper keeps only what is its
own: how it reads the feature columns (``features``), its ``predict_features`` / ``proba_features`` hooks,
where its labels come from, and what its ``__repr__`` names (``describe``). Attribute names are part of the
stored pickles (an instance pickles as its class path and ``__dict__``): a wrapper must not rename them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from automl_orchestra.contracts.errors import StepError


@dataclass
class ModelSpec:
    """What ``model/{engine}`` stores when the instance cannot be made yet: the class and its arguments.

    An H2O object lives in a JVM that ends with the step and a ``TabularPredictor`` creates its folder when
    constructed, so the instance is made by the ``train`` step, in that step's cluster or output folder.
    """

    module_path: str
    class_name: str
    kwargs: dict[str, Any]

    @property
    def qualified_name(self) -> str:
        return f"{self.module_path}.{self.class_name}"

    def __repr__(self) -> str:
        return f"ModelSpec({self.qualified_name}, {sorted(self.kwargs)})"


class AutoMLModel(BaseEstimator):
    """A trained model that remembers its feature columns, target and task.

    ``predict`` accepts the table the step trained on (target, identifier and excluded columns may still be
    there): ``features`` selects the training columns and prepares them the engine's way.
    """

    # The engine environment the model loads in: a pickle needs its engine's libraries.
    environment: ClassVar[str] = "main"
    feature_names: list[str]
    target_name: str | None
    task: str
    # Class default: wrappers whose library knows the labels itself (FLAML) never set it.
    classes: list[Any] | None = None

    # ----- hooks -------------------------------------------------------------------------------

    def predict_features(self, features: Any, **kwargs: Any) -> Any:
        """The library's prediction on rows already prepared by :meth:`features`."""
        raise NotImplementedError

    def proba_features(self, features: Any, **kwargs: Any) -> Any:
        """The library's class probabilities (columns in ``classes_`` order) on prepared rows."""
        raise NotImplementedError

    def labels(self) -> Any:
        """The class labels in ``predict_proba``'s column order, None for a regression model."""
        return self.classes

    def describe(self) -> dict[str, Any]:
        """What ``repr`` shows after the class name: the engine's own facts first."""
        return {"task": self.task, "target": self.target_name, "features": len(self.feature_names)}

    # ----- the estimator -----------------------------------------------------------------------

    def select(self, X: Any) -> pd.DataFrame:
        """The training columns of ``X``, in training order (an array is read as those columns)."""
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=self.feature_names)
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise StepError(f"the data lacks {len(missing)} of the model's feature column(s): {missing[:10]}")
        return frame[self.feature_names]

    def features(self, X: Any) -> Any:
        """``X`` as the library saw the training rows; by default the training columns, freshly indexed."""
        return self.select(X).reset_index(drop=True)

    def predict(self, X: Any, **kwargs: Any) -> Any:
        return self.predict_features(self.features(X), **kwargs)

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:
        if self.task != "classification":
            raise StepError("predict_proba needs a classification model")
        return self.proba_features(self.features(X), **kwargs)

    @property
    def classes_(self) -> np.ndarray:
        labels = self.labels()
        if labels is None:
            raise AttributeError(f"a {self.task} model has no classes_")
        return np.asarray(labels)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy or R2, as scikit-learn's classifiers and regressors score."""
        truth = np.asarray(y)
        predicted = np.ravel(np.asarray(self.predict(X)))  # a one-column table of predictions is a vector too
        if self.task == "classification":
            return float(np.mean(predicted.astype(str) == truth.astype(str)))
        from sklearn.metrics import r2_score

        return float(r2_score(truth, predicted))

    def __sklearn_tags__(self) -> Any:
        # Imported here: scikit-learn < 1.6 (the PyCaret environment, which imports this module) has no tags
        # and never calls this method.
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        if self.task == "classification":
            tags.estimator_type, tags.classifier_tags = "classifier", ClassifierTags()
        else:
            tags.estimator_type, tags.regressor_tags = "regressor", RegressorTags()
        tags.target_tags.required = True
        return tags

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # BaseEstimator's repr lists constructor parameters (a whole fitted search): name the facts instead.
        facts = ", ".join(f"{key}={value!r}" for key, value in self.describe().items())
        return f"{type(self).__name__}({facts})"[: max(N_CHAR_MAX, 80)]


def probabilities_from_decision(decision: Any) -> np.ndarray:
    """Class scores in [0, 1] from a decision function, for a classifier without ``predict_proba``: the
    logistic of the margin (two classes) or the softmax of the margins. They rank rows as the model does,
    so AUC and the predicted class are the model's own; they are not calibrated probabilities."""
    margins = np.asarray(decision, dtype=float)
    if margins.ndim == 1:
        positive = 1.0 / (1.0 + np.exp(-margins))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
