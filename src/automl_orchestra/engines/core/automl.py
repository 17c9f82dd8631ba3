"""What every ``automl/{engine}`` step shares: the declarative request and the training table.

The body is the same for every engine (``parentName``, ``target``, ``task``, ``timeBudget``, ``metric``,
``seed``, ``autoExclude``, ``excludeColumns``, ``keepColumns``); each engine's settings class extends
:class:`AutoMLRequest` with its own search controls and options.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from automl_orchestra.contracts.budget import budget_reserve_s
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core import params as p
from automl_orchestra.engines.core.base import StepContext
from automl_orchestra.engines.core.columns import ColumnDecision, select_features

TASKS = ("classification", "regression")


class TaskModel(BaseEstimator):
    """Base of a fitted engine model with a ``task`` attribute and a ``predict``: scikit-learn sees a
    classifier or a regressor (so ``evaluate`` scorers work on it) and ``score`` is accuracy or R2."""

    task: str

    def predict(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def score(self, X: Any, y: Any) -> float:
        predicted = self.predict(X)
        truth = np.asarray(y)
        if self.task == "classification":
            return float(np.mean(predicted.astype(str) == truth.astype(str)))
        from sklearn.metrics import r2_score

        return float(r2_score(truth, predicted))

    def __sklearn_tags__(self) -> Any:
        # Imported here: scikit-learn < 1.6 (the PyCaret environment, which imports this module) has no tags.
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        if self.task == "classification":
            tags.estimator_type, tags.classifier_tags = "classifier", ClassifierTags()
        else:
            tags.estimator_type, tags.regressor_tags = "regressor", RegressorTags()
        return tags


class AutoMLRequest:
    """The declarative ``automl`` body, validated."""

    def __init__(self, ctx: StepContext) -> None:
        params = ctx.params
        self.parent = p.require_str(params, "parentName")
        self.target = p.require_str(params, "target")
        self.task = p.optional_str(params, "task", "classification") or "classification"
        if self.task not in TASKS:
            raise StepError(f"task {self.task!r} is not one of {list(TASKS)}")
        self.metric = p.optional_str(params, "metric", "auto") or "auto"
        self.seed = p.optional_int(params, "seed", 1)
        self.auto_exclude = p.optional_bool(params, "autoExclude", True)
        self.exclude = p.optional_str_list(params, "excludeColumns") or []
        self.keep = p.optional_str_list(params, "keepColumns") or []
        self.time_budget = p.optional_number(params, "timeBudget", 60.0, minimum=1.0)
        _check_budget(self.time_budget, ctx.timeout_s)
        # The budget is the whole step's: what came before the search (loading the data, imports) is in it.
        self.deadline = ctx.started + self.time_budget

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class TrainingData:
    frame: pd.DataFrame  # rows with a target, index reset
    decision: ColumnDecision  # the feature columns used and those excluded, with reasons


def training_data(ctx: StepContext, request: AutoMLRequest) -> TrainingData:
    """The parent table without rows lacking a target, and the feature columns the search may use."""
    frame = ctx.load_step(request.parent)
    if not isinstance(frame, pd.DataFrame):
        raise StepError(f"step {request.parent!r} is not a dataset (table): it holds {type(frame).__name__}")
    if request.target not in frame.columns:
        raise StepError(f"target {request.target!r} is not a column of {request.parent!r}: {list(frame.columns)}")
    frame = frame[frame[request.target].notna()].reset_index(drop=True)
    if frame.empty:
        raise StepError(f"every row of {request.parent!r} has a missing target {request.target!r}")
    decision = select_features(
        frame.drop(columns=[request.target]),
        auto_exclude=request.auto_exclude,
        exclude=request.exclude,
        keep=request.keep,
    )
    for column, reason in decision.excluded.items():
        print(f"excluding column {column!r}: {reason}", flush=True)
    return TrainingData(frame, decision)


def bounded_budget(requested: float, step_timeout: float) -> float:
    """The largest search budget up to ``requested`` that leaves the reserve under the hard step timeout for
    loading the data, the final retraining and saving the model (the worker is killed at the timeout)."""
    return max(1.0, min(requested, step_timeout - budget_reserve_s(step_timeout)))


def _check_budget(budget: float, step_timeout: float) -> None:
    """The API sized the timeout for the budget at POST, so this only catches a step that bypassed it (an
    old step re-run, a job built by hand): fail clearly rather than cut the budget behind the user's back."""
    if bounded_budget(budget, step_timeout) < budget - 1e-6:
        raise StepError(
            f"timeBudget {budget:g} s does not fit the step timeout of {step_timeout:g} s, which must also hold "
            f"the engine's reserve of {budget_reserve_s(step_timeout):g} s; re-create the step without "
            "limits.timeoutS (the server then sizes it) or with a smaller timeBudget"
        )
