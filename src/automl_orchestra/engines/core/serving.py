"""A registered version as a serving worker (``runtime/serving_worker.py``) uses it: rows in, an answer out.

``Engine.load_served`` loads a stored output in this form. The default, :class:`ServedModel`, serves any
estimator with ``predict`` (and ``predict_proba`` / ``classes_`` for a classifier): scikit-learn models and
pipelines, every :class:`~automl_orchestra.engines.core.model.AutoMLModel`, FLAML, TPOT, PyCaret. An engine
whose models need more overrides ``load_served`` in its own folder and returns a subclass: H2O keeps a JVM
for a model without a MOJO and scores once for labels and probabilities, Keras reshapes rows into its
input tensor, a NAS network applies its training preprocessing.

Besides its signature's rows, a version may accept another *input form*: a tool names one in the catalog
(``ToolSpec.serving_input``, e.g. the long series table a model of tsfresh features also takes), and
:func:`input_forms` finds those that apply to a version's columns.

A model that can never serve (an untrained network, say) raises :class:`NotServable` when loaded; rows the
model refuses raise :class:`~automl_orchestra.contracts.errors.StepError` with the reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError

TASKS = ("classification", "regression")


class NotServable(StepError):
    """This version cannot answer predictions at all (the message says why): the request is refused."""


@dataclass
class Answer:
    """A served model's answer to some rows: one prediction per row (a value, a label, or a list of raw
    outputs), and for a classifier asked for them, probabilities with their classes in column order."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None


@dataclass
class Rows:
    """The rows a model predicts, made from a request in another input form; ``ids`` names each row (the
    series an answer is about)."""

    frame: pd.DataFrame
    ids: list[Any] | None = None


class InputForm(Protocol):
    """Another shape a version's rows may come in (see the module); made by the catalog's factory for a
    version's input columns."""

    hint: str  # how to send rows in this form, added to the error naming what does not match

    def matches(self, frame: pd.DataFrame) -> bool: ...

    def rows(self, frame: pd.DataFrame) -> Rows: ...


class ServedModel:
    """An estimator as a serving worker calls it. ``task`` is ``classification``, ``regression`` or None (the
    model answers raw outputs); ``columns`` the input columns the model itself names, when it does."""

    def __init__(self, model: Any, task: str | None = None) -> None:
        if not callable(getattr(model, "predict", None)):
            raise NotServable(f"the stored {type(model).__name__} has no predict method: it is not a model to serve")
        self.model = model
        self.task = task if task in TASKS else estimator_task(model)

    @property
    def classifier(self) -> bool:
        return self.task == "classification" and callable(getattr(self.model, "predict_proba", None))

    def columns(self) -> list[str] | None:
        names = getattr(self.model, "feature_names", None)
        if names is None:
            names = getattr(self.model, "feature_names_in_", None)
        return None if names is None else [str(name) for name in names]

    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        if not probabilities:
            return Answer(np.asarray(self.model.predict(rows)))
        scores = np.asarray(self.model.predict_proba(rows), dtype=float)
        classes = np.asarray(self.model.classes_)
        if predicts_by_argmax(self.model) and scores.ndim == 2 and scores.shape[1] == len(classes):
            # The class these estimators predict is, by their own code, the most probable one: one call, not two.
            return Answer(classes[np.argmax(scores, axis=1)], scores, classes.tolist())
        return Answer(np.asarray(self.model.predict(rows)), scores, classes.tolist())

    def takes_arrays(self, columns: list[str]) -> bool:
        """Whether :meth:`predict_array` answers rows of these number columns given as a float array in this
        order (the quick way of JSON records of numbers: no table is made). No, by default."""
        return False

    def predict_array(self, rows: np.ndarray, probabilities: bool) -> Answer:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the model holds outside this process (a JVM...); the version is no longer served."""


# Classifiers whose ``predict`` is, in their library's code, the class of the largest ``predict_proba`` (or of
# a decision function that probabilities rise with): scikit-learn's trees, forests, boosting and logistic
# regression, LightGBM and XGBoost. Not SVC (Platt-scaled probabilities may disagree with its decision).
ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.linear_model._logistic.LogisticRegression",
        "lightgbm.sklearn.LGBMClassifier",
        "xgboost.sklearn.XGBClassifier",
    }
)


def predicts_by_argmax(model: Any) -> bool:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}" in ARGMAX_CLASSIFIERS


def estimator_task(model: Any) -> str | None:
    """The task of a fitted estimator: its own ``task`` (every AutoMLModel), else scikit-learn's estimator
    type, else a classifier when it has probabilities and classes."""
    task = getattr(model, "task", None)
    if task in TASKS:
        return str(task)
    kind = _estimator_type(model)
    if kind == "classifier":
        return "classification"
    if kind == "regressor":
        return "regression"
    if callable(getattr(model, "predict_proba", None)) and _has_classes(model):
        return "classification"
    return None


def _estimator_type(model: Any) -> str | None:
    try:
        from sklearn.base import is_classifier, is_regressor
    except ImportError:  # pragma: no cover -- every engine environment has scikit-learn
        return None
    try:
        if is_classifier(model):
            return "classifier"
        if is_regressor(model):
            return "regressor"
    except Exception:  # noqa: BLE001 -- not an estimator scikit-learn can read
        return None
    return None


def _has_classes(model: Any) -> bool:
    try:
        return getattr(model, "classes_", None) is not None
    except Exception:  # noqa: BLE001 -- a regression wrapper raises AttributeError or its own error
        return False


def input_forms(columns: list[str] | None) -> list[InputForm]:
    """The input forms the catalog's tools declare that apply to a version taking ``columns``."""
    if not columns:
        return []
    forms = []
    for spec in catalog.TOOLS.values():
        if not spec.serving_input:
            continue
        module_name, _, name = spec.serving_input.partition(":")
        try:
            form = getattr(importlib.import_module(module_name), name)(columns)
        except ImportError:  # this environment lacks the tool's library: its models are not served here
            continue
        if form is not None:
            forms.append(form)
    return forms


def numeric_matrix(rows: pd.DataFrame, values: int, shape: Any) -> np.ndarray:
    """The rows as a float32 matrix of ``values`` numbers each (a tensor model's flat input); the error names
    the model's input shape and what the rows hold instead."""
    if rows.shape[1] != values:
        raise StepError(
            f"the model takes {values} numbers per row (input shape {list(shape)}); the rows have "
            f"{rows.shape[1]} column(s): send one value per input element, in order"
        )
    text = [str(name) for name in rows.columns if not pd.api.types.is_numeric_dtype(rows[name])]
    if text:
        raise StepError(f"the model takes numbers; column(s) {text[:10]} hold other values")
    return rows.to_numpy(dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities
