"""The ``autogluon`` tool: AutoGluon's ``TabularPredictor`` through the Learning Orchestra services, and the
declarative ``automl`` service.

A predictor is a folder, not a Python object: it is trained straight into the step's output folder
(``predictor/``, published only when the step finishes, so never half-written) and never into
``./AutogluonModels``. The stored value is an :class:`AutoGluonModel` that loads that folder on first use.
Threads are bounded to the step's CPU allowance (``num_cpus``); bagged folds are fitted sequentially in
the worker by default, because AutoGluon would otherwise start a Ray instance outside the worker's
process group accounting (``options: {"ag_args_ensemble": {...}}`` overrides it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.parameters import MethodBody
from automl_orchestra.engines.core.automl import AutoMLEngine, AutoMLRequest, SearchOutcome, TrainingData
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.calls import (
    MethodEngine,
    as_scalar,
    call_method,
    describe_parameters,
    import_allowed,
    method_kwargs,
)
from automl_orchestra.engines.core.model import AutoMLModel, ModelSpec
from automl_orchestra.engines.core.serving import ServedModel

PREDICTOR_DIR = "predictor"
# Our metric names that AutoGluon spells differently; every other name is passed as is.
METRICS = {"auto": None, "auc": "roc_auc", "logloss": "log_loss", "ap": "average_precision"}
RESERVED_OPTIONS = frozenset({"train_data", "time_limit", "num_cpus", "label", "path", "problem_type", "eval_metric"})
# AutoGluon keeps to time_limit closely but still saves and may refit after it: the share it is given, and
# what is kept for loading the leaderboard and answering.
TIME_SHARE = 0.9
FINISH_S = 2.0
SEQUENTIAL_FOLDS = {"fold_fitting_strategy": "sequential_local"}


def gpu_count(ctx: StepContext) -> int | str:
    """GPUs for AutoGluon: those the step asked for, else AutoGluon's own detection (uses CUDA when present)."""
    gpus = ctx.job.limits.gpus
    return math.ceil(gpus) if gpus > 0 else "auto"


class AutoGluonModel(AutoMLModel):
    """A trained ``TabularPredictor`` stored in the step's output, loaded lazily."""

    def __init__(
        self,
        feature_names: list[str] | None = None,
        target_name: str | None = None,
        task: str = "classification",
        classes: list[Any] | None = None,
        best_model: str = "",
    ) -> None:
        self.feature_names = feature_names or []
        self.target_name = target_name
        self.task = task
        self.classes = classes
        self.best_model = best_model
        self.directory = ""  # the stored output folder; set when loaded
        self._predictor: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_predictor": None}

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.best_model)

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            if not self.directory:
                raise StepError("this AutoGluon model was not loaded from a stored step output")
            from autogluon.tabular import TabularPredictor

            self._predictor = TabularPredictor.load(
                str(Path(self.directory) / PREDICTOR_DIR), verbosity=0, check_packages=False
            )
        return self._predictor

    def predict_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.predictor.predict(features, **kwargs))

    def proba_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        proba = self.predictor.predict_proba(features, as_multiclass=True, **kwargs)
        return np.asarray(proba[list(self.predictor.class_labels)], dtype=float)

    def describe(self) -> dict[str, Any]:
        return {"best_model": self.best_model, **super().describe()}


class AutoGluonRequest(AutoMLRequest):
    """The ``automl/autogluon`` body: the common request, AutoGluon's ``options`` and its metric name."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        self.options = self.options_except(ctx, RESERVED_OPTIONS)
        self.eval_metric = METRICS.get(self.metric, self.metric)
        _check_metric(self.eval_metric, self.task)

    def time_limit(self, left: float) -> float:
        limit = (left - FINISH_S) * TIME_SHARE
        if limit < 1.0:
            raise StepError(f"the time budget leaves no time to fit ({left:.0f} s left after loading the data)")
        return round(limit, 1)

    def fit_arguments(self, ctx: StepContext, time_limit: float) -> dict[str, Any]:
        return {
            "time_limit": time_limit,
            "num_cpus": ctx.cpus,
            "num_gpus": gpu_count(ctx),
            "ag_args_ensemble": SEQUENTIAL_FOLDS,
            **self.options,
        }


class AutoGluonEngine(MethodEngine, AutoMLEngine[AutoGluonRequest]):
    name = "autogluon"
    allowed_modules = catalog.TOOLS["autogluon"].allowed_modules
    request_class = AutoGluonRequest

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        value = super().load(ref, local_dir)
        if isinstance(value, AutoGluonModel):
            value.directory = str(local_dir)
        return value

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        value = self.load(ref, local_dir)
        if isinstance(value, AutoGluonModel):
            value.predictor  # noqa: B018 -- the predictor is read when the version loads, not at its first request
        return ServedModel(value)

    def model(self, ctx: StepContext) -> StepResult:
        module_path, class_name, factory = self.model_factory(ctx)
        kwargs = method_kwargs(ctx, "classParameters")
        if "path" in kwargs:
            raise StepError("classParameters 'path' is set by the orchestrator (the train step's output folder)")
        if "label" not in kwargs:
            raise StepError("classParameters 'label' (the target column) is required for a TabularPredictor")
        metadata = {"class": f"{module_path}.{class_name}", "estimatorParameters": describe_parameters(factory, kwargs)}
        return StepResult(value=ModelSpec(module_path, class_name, kwargs), metadata=metadata)

    def _fit(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(MethodBody)
        blueprint = ctx.load_step(request.parentName)
        if not isinstance(blueprint, ModelSpec):
            return super()._fit(ctx)
        factory = import_allowed(blueprint.module_path, blueprint.class_name, self.allowed_modules)
        predictor = factory(**blueprint.kwargs, path=str(ctx.output_dir / PREDICTOR_DIR))
        method = request.method or "fit"
        kwargs = {"num_cpus": ctx.cpus, "num_gpus": gpu_count(ctx), **method_kwargs(ctx)}
        print(f"calling {blueprint.class_name}.{method}({', '.join(kwargs)})", flush=True)
        call_method(predictor, method, kwargs)
        train = kwargs.get("train_data")
        label = blueprint.kwargs["label"]
        features = [c for c in (train.columns if isinstance(train, pd.DataFrame) else []) if c != label]
        model = stored_model(predictor, features, label)
        board = predictor.leaderboard(silent=True)
        metadata = {
            "class": blueprint.qualified_name,
            "method": method,
            "bestModel": predictor.model_best,
            "models": len(board),
            "evalMetric": str(predictor.eval_metric),
        }
        return StepResult(value=model, metadata=metadata)

    def search(self, ctx: StepContext, request: AutoGluonRequest, data: TrainingData) -> SearchOutcome:
        from autogluon.tabular import TabularPredictor

        predictor = TabularPredictor(
            label=request.target,
            problem_type=None if request.task == "classification" else "regression",
            eval_metric=request.eval_metric,
            path=str(ctx.output_dir / PREDICTOR_DIR),
            verbosity=2,
        )
        time_limit = request.time_limit(request.seconds_left())
        ctx.progress(None, f"fitting for up to {time_limit:.0f} s")
        predictor.fit(data.frame[[*data.decision.used, request.target]], **request.fit_arguments(ctx, time_limit))
        if not predictor.model_names():
            raise StepError(f"AutoGluon trained no model within {time_limit:.0f} s; raise timeBudget")
        board = autogluon_leaderboard(predictor)
        model = stored_model(predictor, data.decision.used, request.target)
        best_score = as_scalar(board["score_val"].iloc[0]) if not board.empty else None
        metadata = {"problemType": predictor.problem_type, "timeLimit": time_limit, "predictor": PREDICTOR_DIR}
        # AutoGluon's validation scores are "higher is better" (errors are negated); no CV unless bagging.
        metrics = {"validationScore": best_score}
        metric = str(predictor.eval_metric)
        return SearchOutcome(model, board, predictor.model_best, best_score, metric, metadata, metrics)


def stored_model(predictor: Any, features: list[str], target: str) -> AutoGluonModel:
    classification = predictor.problem_type in ("binary", "multiclass")
    classes = [_plain(c) for c in predictor.class_labels] if classification else None
    task = "classification" if classification else "regression"
    return AutoGluonModel(list(features), target, task, classes, str(predictor.model_best))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_metric(metric: str | None, task: str) -> None:
    if metric is None:
        return
    from autogluon.core.metrics import get_metric

    problem = "binary" if task == "classification" else "regression"
    try:
        get_metric(metric, problem_type=problem)
    except (ValueError, KeyError) as exc:
        raise StepError(f"metric {metric!r} is not an AutoGluon metric: {exc}") from None


def autogluon_leaderboard(predictor: Any) -> pd.DataFrame:
    """One row per model, best validation score first: score, fit and predict times, stack level."""
    board = predictor.leaderboard(silent=True)
    keep = [c for c in ("model", "score_val", "eval_metric", "pred_time_val", "fit_time", "stack_level") if c in board]
    board = board[keep].rename(columns={"model": "learner"})
    return board.sort_values("score_val", ascending=False, kind="stable").reset_index(drop=True)
