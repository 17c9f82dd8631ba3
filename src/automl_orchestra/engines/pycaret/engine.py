"""The ``pycaret`` tool: PyCaret 3 experiments as atomic steps, and ``automl/pycaret``.

It runs in the ``pycaret`` engine environment (``environments/pycaret``: PyCaret pins numpy 1.26, pandas 2.1
and scikit-learn 1.4). The steps follow the experiment's own life cycle:

* ``model/pycaret`` creates an experiment (``ClassificationExperiment``, ``RegressionExperiment``,
  ``ClusteringExperiment``, ``AnomalyExperiment``);
* ``transform/pycaret`` calls ``setup`` on it (the data comes in as a ``$dataset`` reference);
* ``train|tune|evaluate|predict|explore/pycaret`` call a method of the set-up experiment
  (``compare_models``, ``create_model``, ``tune_model``, ``ensemble_model``, ``blend_models``,
  ``stack_models``, ``finalize_model``, ``predict_model``, ``assign_model``, ``plot_model``,
  ``interpret_model``...) with models from other steps as ``$references``; the score grid PyCaret shows
  after the call (``pull()``) becomes the derived dataset step ``{name}_grid``;
* ``builder/pycaret`` runs a whole PyCaret script; ``automl/pycaret`` is the declarative body.

An experiment is stored as PyCaret's own ``save_experiment`` file plus its data as Parquet (PyCaret leaves
the data out of that file) and is rebuilt with ``load_experiment`` by the next step, in another worker.
PyCaret itself is imported lazily: the main environment imports this module to read the tables it wrote.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.core.automl import AutoMLEngine, AutoMLRequest, SearchOutcome, TrainingData
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.bounded import run_bounded
from automl_orchestra.engines.core.calls import (
    as_scalar,
    call_method,
    method_kwargs,
    method_request,
    qualified_name,
    shape_output,
)
from automl_orchestra.engines.core.model import AutoMLModel, probabilities_from_decision
from automl_orchestra.engines.core.user_code import run_builder
from automl_orchestra.engines.core.values import readable_json
from automl_orchestra.engines.pycaret.compat import drop_pycaret2_arguments, pycaret2_setup_arguments
from automl_orchestra.engines.pycaret.parameters import ExperimentBody, PycaretAutoMLBody

# Experiment class -> the PyCaret module that defines it.
EXPERIMENTS = {
    "ClassificationExperiment": "pycaret.classification",
    "RegressionExperiment": "pycaret.regression",
    "ClusteringExperiment": "pycaret.clustering",
    "AnomalyExperiment": "pycaret.anomaly",
}
TASK_EXPERIMENTS = {"classification": "ClassificationExperiment", "regression": "RegressionExperiment"}
EXPERIMENT_META = "experiment.json"
EXPERIMENT_FILE = "experiment.pkl"
EXPERIMENT_DATA = "experiment-data.parquet"
PLOTS_DIR = "plots"
# Our metric names (and scikit-learn's) -> PyCaret's column names in its score grids.
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "AUC",
    "auc": "AUC",
    "recall": "Recall",
    "precision": "Prec.",
    "f1": "F1",
    "kappa": "Kappa",
    "mcc": "MCC",
    "r2": "R2",
    "mae": "MAE",
    "mse": "MSE",
    "rmse": "RMSE",
    "rmsle": "RMSLE",
    "mape": "MAPE",
}
DEFAULT_METRIC = {"classification": "Accuracy", "regression": "R2"}
# Share of the automl budget for comparing models; tuning the winner and refitting it get the rest.
COMPARE_SHARE = 0.6
# Tried first: strong and quick on tables.
QUICK_FIRST = ("lightgbm", "lr", "rf", "et", "dt", "lda", "nb", "ridge", "ada", "gbc")
# Below SHORT_BUDGET_S of budget, cross-validation uses fewer folds than PyCaret's 10, so that more than one
# or two models fit in the budget on a table of tens of thousands of rows.
SHORT_BUDGET_S = 300.0
SHORT_BUDGET_FOLDS = 5
# finalize_model's fit, relative to one fold's: more rows (the holdout ones too).
FINALIZE_FACTOR = 1.5
# One tuning iteration relative to the winner's cross-validation (other hyperparameters may be slower).
TUNE_MARGIN = 1.5
# Saving the model and the leaderboard, after the search.
FINISH_S = 3.0
# Scoring PyCaret's holdout rows (kept free of tuning).
HOLDOUT_S = 2.0


class PycaretRequest(AutoMLRequest):
    """The ``automl/pycaret`` body: the common request, the folds and PyCaret's ``options`` (sections
    ``setup`` and ``compare_models`` passed to those calls, and ``finalize``), checked before the data is
    loaded."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        self.options = ctx.request_as(PycaretAutoMLBody).options
        short = self.time_budget < SHORT_BUDGET_S
        self.folds = self.body.cv or (SHORT_BUDGET_FOLDS if short else 10)


class PycaretEngine(AutoMLEngine[PycaretRequest]):
    name = "pycaret"
    request_class = PycaretRequest

    # ----- the experiment ----------------------------------------------------------------------

    def model(self, ctx: StepContext) -> StepResult:
        class_name = ctx.request_as(ExperimentBody).class_
        experiment = new_experiment(class_name, method_kwargs(ctx, "classParameters"))
        return StepResult(value=experiment, metadata={"class": class_name, "setup": False})

    def transform(self, ctx: StepContext) -> StepResult:
        experiment = self._experiment(ctx)
        method = _method(ctx, "setup")
        kwargs = method_kwargs(ctx)
        if method == "setup":
            kwargs = _setup_defaults(experiment, kwargs, ctx)
        result, grid = _call_showing(experiment, method, kwargs)
        if method == "setup":
            metadata = {"class": type(experiment).__name__, "setup": True, "method": method}
            if grid is not None and {"Description", "Value"} <= set(grid.columns):
                pairs = zip(grid["Description"], grid["Value"], strict=True)
                metadata["summary"] = {str(k): readable_json(v) for k, v in pairs}
            return StepResult(value=experiment, metadata=metadata)
        return self._result(ctx, experiment, method, result, grid)

    # ----- methods of a set-up experiment ------------------------------------------------------

    def train(self, ctx: StepContext) -> StepResult:
        return self._call(ctx, "compare_models")

    def tune(self, ctx: StepContext) -> StepResult:
        return self._call(ctx, "tune_model")

    def evaluate(self, ctx: StepContext) -> StepResult:
        return self._call(ctx, "finalize_model")

    def predict(self, ctx: StepContext) -> StepResult:
        parent = ctx.load_step(_parent_name(ctx))
        if is_experiment(parent):
            return self._call(ctx, "predict_model", parent)
        # A model (e.g. the pipeline automl/pycaret stored): its own predict/predict_proba on a table.
        method = _method(ctx, "predict")
        kwargs = method_kwargs(ctx)
        result = call_method(parent, method, kwargs)
        value = shape_output(result, kwargs.get("X"), target=parent)
        return StepResult(value=value, metadata={"class": qualified_name(parent), "method": method})

    def explore(self, ctx: StepContext) -> StepResult:
        experiment = self._experiment(ctx)
        method = _method(ctx, "plot_model")
        kwargs = method_kwargs(ctx)
        plots = ctx.output_dir / PLOTS_DIR
        plots.mkdir(parents=True, exist_ok=True)
        if method in ("plot_model", "interpret_model"):
            kwargs.setdefault("save", str(plots))
        if method == "plot_model":
            kwargs.setdefault("verbose", False)
        with _headless_plots():
            result = call_method(experiment, method, kwargs)
        files = sorted(f"{PLOTS_DIR}/{path.name}" for path in plots.iterdir() if path.is_file())
        if not files:
            raise StepError(f"{method} produced no plot file; PyCaret returned {readable_json(result)!r}")
        return StepResult(value={"plots": files, "method": method}, metadata={"plots": files, "method": method})

    # ----- whole pipelines ---------------------------------------------------------------------

    def builder(self, ctx: StepContext) -> StepResult:
        import pycaret

        # The seed's builder code is PyCaret 2's (``setup(..., silent=True)``): accepted with a warning.
        with pycaret2_setup_arguments():
            return run_builder(ctx, {"pycaret": pycaret})

    def search(self, ctx: StepContext, request: PycaretRequest, data: TrainingData) -> SearchOutcome:
        return search_pycaret(ctx, request, data)

    # ----- storage: experiments as PyCaret files + Parquet, the rest as usual -------------------

    def save(self, value: Any, out_dir: Path) -> OutputRef:
        if not is_experiment(value):
            return super().save(value, out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"class": type(value).__name__, "setup": bool(getattr(value, "_setup_ran", False))}
        if meta["setup"]:
            value.save_experiment(out_dir / EXPERIMENT_FILE)
            value.data.to_parquet(out_dir / EXPERIMENT_DATA)
        (out_dir / EXPERIMENT_META).write_text(json.dumps(meta), encoding="utf-8")
        files = sorted(path.name for path in out_dir.iterdir() if path.is_file())
        return OutputRef(kind="object", prefix="", files=files)

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        meta_file = local_dir / EXPERIMENT_META
        if not meta_file.exists():
            return super().load(ref, local_dir)
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        cls = experiment_class(meta["class"])
        if not meta["setup"]:
            return cls()
        data = pd.read_parquet(local_dir / EXPERIMENT_DATA)
        with _quiet():
            return cls.load_experiment(str(local_dir / EXPERIMENT_FILE), data=data)

    # ----- helpers -----------------------------------------------------------------------------

    def _experiment(self, ctx: StepContext) -> Any:
        parent_name = _parent_name(ctx)
        experiment = ctx.load_step(parent_name)
        if not is_experiment(experiment):
            raise StepError(
                f"step {parent_name!r} holds {type(experiment).__name__}, not a PyCaret experiment: "
                "create one with model/pycaret (and call setup with transform/pycaret)"
            )
        return experiment

    def _call(self, ctx: StepContext, default_method: str, experiment: Any = None) -> StepResult:
        experiment = experiment if experiment is not None else self._experiment(ctx)
        if not getattr(experiment, "_setup_ran", False):
            raise StepError(
                f"the experiment in {_parent_name(ctx)!r} is not set up yet: "
                "call setup on it with a transform/pycaret step first"
            )
        method = _method(ctx, default_method)
        kwargs = _quiet_kwargs(experiment, method, method_kwargs(ctx))
        result, grid = _call_showing(experiment, method, kwargs)
        return self._result(ctx, experiment, method, result, grid)

    def _result(
        self, ctx: StepContext, experiment: Any, method: str, result: Any, grid: pd.DataFrame | None
    ) -> StepResult:
        metrics = grid_metrics(grid) if grid is not None else {}
        metadata: dict[str, Any] = {"experiment": type(experiment).__name__, "method": method}
        if result is not None and not isinstance(result, pd.DataFrame):
            metadata["class"] = qualified_name(result)
            metadata["model"] = readable_json(result)
        derived = {}
        if ctx.job.derived:
            derived["grid"] = grid if grid is not None else pd.DataFrame({"note": [f"{method} showed no score grid"]})
        if result is None:
            raise StepError(f"{type(experiment).__name__}.{method} returned nothing to store")
        return StepResult(value=result, metadata=metadata, metrics=metrics, derived=derived)


class PycaretModel(AutoMLModel):
    """What ``automl/pycaret`` stores: the finalized PyCaret pipeline with the columns and types it was
    trained on, so ``predict`` accepts the table the step trained from (target and excluded columns may
    still be there). Its predictions are the pipeline's own (labels decoded by the pipeline)."""

    environment = "pycaret"

    def __init__(
        self,
        pipeline: Any = None,
        feature_names: list[str] | None = None,
        dtypes: dict[str, Any] | None = None,
        target_name: str | None = None,
        task: str = "classification",
    ) -> None:
        self.pipeline = pipeline
        self.feature_names = feature_names or []
        self.dtypes = dtypes or {}
        self.target_name = target_name
        self.task = task

    @classmethod
    def trained_on(cls, pipeline: Any, training: pd.DataFrame, target: str, task: str) -> PycaretModel:
        dtypes = {str(name): dtype for name, dtype in training.dtypes.items()}
        return cls(pipeline, [str(name) for name in training.columns], dtypes, target, task)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models stored before the shared base named their columns ``features`` (now the method that reads
        # them) and had no task: PyCaret's pipeline knows whether it classifies.
        if isinstance(state.get("features"), list):
            state["feature_names"] = state.pop("features")
        if "task" not in state:
            from sklearn.base import is_classifier

            state["task"] = "classification" if is_classifier(state.get("pipeline")) else "regression"
        super().__setstate__(state)

    def labels(self) -> Any:
        """The labels in ``predict_proba``'s column order: PyCaret's estimator sees a label-encoded target (its
        ``classes_`` are 0..n-1), the pipeline's ``label_encoding`` step knows the labels."""
        classes = getattr(self.pipeline, "classes_", None)
        encoding = dict(getattr(self.pipeline, "steps", [])).get("label_encoding")
        labels = getattr(getattr(encoding, "transformer", None), "classes_", None)
        if classes is None or labels is None:
            return classes
        return np.asarray(labels)[np.asarray(classes, dtype=int)]

    def features(self, X: Any) -> pd.DataFrame:
        # A column typed differently here (e.g. all blank, so read as text) would escape the pipeline's
        # imputers and encoders: give every column its training type.
        frame = self.select(X).copy()
        for name, dtype in self.dtypes.items():
            if frame[name].dtype != dtype:
                frame[name] = frame[name].astype(dtype)
            if frame[name].dtype.kind == "O":
                # Parquet nulls come back as None in text columns; PyCaret's imputers only see NaN.
                frame[name] = frame[name].where(frame[name].notna(), np.nan)
        return frame

    def predict_features(self, features: Any, **kwargs: Any) -> Any:
        return self.pipeline.predict(features, **kwargs)

    def proba_features(self, features: Any, **kwargs: Any) -> Any:
        try:
            return self.pipeline.predict_proba(features, **kwargs)
        except AttributeError:
            # PyCaret also ranks models without probabilities (RidgeClassifier, a linear SVM) by AUC, from
            # their decision function, and such a model can win: score it the same way.
            return probabilities_from_decision(self.pipeline.decision_function(features))

    def describe(self) -> dict[str, Any]:
        steps = getattr(self.pipeline, "steps", None)
        final = steps[-1][1] if steps else self.pipeline
        return {"model": type(final).__name__, **super().describe()}


# ----- requests ------------------------------------------------------------------------------------


def _parent_name(ctx: StepContext) -> str:
    """The step holding the experiment (or model) a method step calls: ``explore``'s model leaves it optional
    (other tools explore a module), PyCaret always needs it."""
    parent = method_request(ctx).parentName
    if not parent:
        raise StepError(f"{ctx.job.service}/pycaret needs parentName: the step holding the experiment")
    return parent


def _method(ctx: StepContext, default: str) -> str:
    """The method the step calls: the one the request names, else the service's usual one."""
    return method_request(ctx).method or default


# ----- experiments ---------------------------------------------------------------------------------


def experiment_class(class_name: str) -> Any:
    module = EXPERIMENTS.get(class_name)
    if module is None:
        raise StepError(f"class {class_name!r} is not a PyCaret experiment; use one of {sorted(EXPERIMENTS)}")
    with _quiet():
        return getattr(importlib.import_module(module), class_name)


def new_experiment(class_name: str, kwargs: dict[str, Any]) -> Any:
    return experiment_class(class_name)(**kwargs)


def is_experiment(value: Any) -> bool:
    return any(cls.__name__ in EXPERIMENTS and cls.__module__.startswith("pycaret.") for cls in type(value).__mro__)


def _setup_defaults(experiment: Any, kwargs: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """PyCaret 3 defaults that do not fit a worker: no HTML/notebook display, the step's CPUs, the log in
    the step's own directory. PyCaret 2's prompt-silencing arguments (``silent``) are gone in PyCaret 3:
    dropped with a warning instead of failing (``compat.py``)."""
    kwargs = drop_pycaret2_arguments(kwargs)
    accepted = inspect.signature(experiment.setup).parameters
    defaults = {"html": False, "verbose": False, "n_jobs": ctx.cpus, "system_log": str(ctx.work_dir / "logs.log")}
    return {**{k: v for k, v in defaults.items() if k in accepted}, **kwargs}


def _quiet_kwargs(experiment: Any, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = getattr(experiment, method, None)
    try:
        accepted = inspect.signature(bound).parameters if bound is not None else {}
    except (TypeError, ValueError):
        accepted = {}
    return {"verbose": False, **kwargs} if "verbose" in accepted else kwargs


def _call_showing(experiment: Any, method: str, kwargs: dict[str, Any]) -> tuple[Any, pd.DataFrame | None]:
    """``experiment.method(**kwargs)`` (plots to files only), and the score grid this call displayed, if any."""
    print(f"calling {type(experiment).__name__}.{method}({', '.join(kwargs)})", flush=True)
    shown_before = _last_display(experiment)
    with _headless_plots():
        result = call_method(experiment, method, kwargs)
    shown = _last_display(experiment)
    return result, _grid(experiment) if shown is not None and shown is not shown_before else None


def _last_display(experiment: Any) -> Any:
    """The object behind ``pull()`` (the last table the experiment displayed), to tell whether a call
    displayed a new one: ``finalize_model`` shows nothing, and the previous grid must not be re-reported."""
    container = getattr(experiment, "_display_container", None)
    return container[-1] if container else None


def _grid(experiment: Any) -> pd.DataFrame | None:
    """The table PyCaret displayed after the last call, with its index (fold or model id) as a column."""
    try:
        grid = experiment.pull()
    except Exception:  # noqa: BLE001 - no display yet: there simply is no grid
        return None
    if not isinstance(grid, pd.DataFrame) or grid.empty:
        return None
    grid = grid.copy()
    index_name = grid.index.name or ("Fold" if "Mean" in grid.index else "id")
    grid.index = grid.index.map(str)
    return grid.reset_index(names=index_name if index_name not in grid.columns else f"{index_name}_")


def grid_metrics(grid: pd.DataFrame) -> dict[str, float]:
    """Metrics of a score grid: the ``Mean`` row of a CV grid, or the first row of a holdout grid."""
    first = grid.columns[0]
    rows = grid[grid[first] == "Mean"] if first == "Fold" else grid
    if rows.empty:
        return {}
    row = rows.iloc[0]
    metrics = {}
    for column in grid.columns[1:]:
        value = as_scalar(row[column])
        if value is not None and math.isfinite(value) and column not in ("TT (Sec)",):
            metrics[str(column)] = value
    return metrics


# ----- automl/pycaret ------------------------------------------------------------------------------


def search_pycaret(ctx: StepContext, request: PycaretRequest, data: TrainingData) -> SearchOutcome:
    """Cross-validate PyCaret's models within a share of the budget, tune the winner with what is left,
    finalize it if that fits too. Every model fit runs bounded (:func:`run_bounded`), so the budget holds."""
    started = ctx.started  # the budget is the whole step's
    frame = data.frame[[*data.decision.used, request.target]]
    sort = pycaret_metric(request.metric, request.task)
    experiment, folds = _set_up(ctx, request, frame)
    compare = _Compare(ctx, experiment, sort, started + COMPARE_SHARE * request.time_budget)
    best = compare.run(request.options.compare_models)
    deadline = started + request.time_budget - FINISH_S
    # One fit on every row (finalize_model) costs about one fold's fit on a bit more data.
    finalize_s = FINALIZE_FACTOR * best.seconds * min(ctx.cpus, folds) / folds
    tuned, tuning = _tune(ctx, experiment, best, sort, deadline - finalize_s - HOLDOUT_S)
    # Scores on PyCaret's holdout split (the model was fitted on the training split only).
    holdout = _call_scored(experiment, "predict_model", {"estimator": tuned})[1]
    final, finalized = _with_preprocessing(experiment, tuned), "not enough time left to refit on every row"
    if not request.options.finalize:
        finalized = "not asked for (options.finalize false): fitted on PyCaret's training split"
    elif deadline - time.monotonic() > finalize_s:
        ctx.progress(0.9, "finalize_model")
        final, finalized = call_method(experiment, "finalize_model", {"estimator": tuned}), "refit on every row"
    cv_metrics = tuning or best.metrics
    metrics = {**{f"cv_{k}": v for k, v in cv_metrics.items()}, **{f"holdout_{k}": v for k, v in holdout.items()}}
    best_score = as_scalar(cv_metrics.get(sort))
    if best_score is not None:
        metrics["cvScore"] = best_score
    metadata = {
        "experiment": type(experiment).__name__,
        "bestModel": type(tuned).__name__,
        "model": readable_json(tuned),
        "sort": sort,
        "folds": folds,
        "tuned": bool(tuning),
        "finalized": finalized,
        "features": data.decision.used,
        "excludedColumns": data.decision.excluded,
        "holdout": holdout,
        "searchSeconds": round(time.monotonic() - started, 2),
    }
    model = PycaretModel.trained_on(final, frame.drop(columns=[request.target]), request.target, request.task)
    board = compare.leaderboard()
    return SearchOutcome(model, board, type(tuned).__name__, best_score, sort, metadata, metrics)


def _set_up(ctx: StepContext, request: PycaretRequest, frame: pd.DataFrame) -> tuple[Any, int]:
    """A new experiment of the task, set up on the training table; and its folds (``options.setup`` may
    have set them)."""
    experiment = new_experiment(TASK_EXPERIMENTS[request.task], {})
    setup = {
        "data": frame,
        "target": request.target,
        "session_id": request.seed,
        "fold": request.folds,
        **request.options.setup,
    }
    ctx.progress(0.02, "setup")
    call_method(experiment, "setup", _setup_defaults(experiment, setup, ctx))
    return experiment, int(setup["fold"])


@dataclass
class _Candidate:
    model_id: str
    model: Any
    metrics: dict[str, float]
    seconds: float  # wall time of its cross-validation and fit


class _Compare:
    """``compare_models``, one model at a time, each stopped at the compare deadline.

    PyCaret's ``budget_time`` is checked between models only: on bank marketing (41k rows) the model under
    way when it ran out took the step to 1.09x its budget."""

    def __init__(self, ctx: StepContext, experiment: Any, sort: str, deadline: float) -> None:
        self.ctx, self.experiment, self.sort, self.deadline = ctx, experiment, sort, deadline
        self.rows: list[dict[str, Any]] = []
        self.candidates: list[_Candidate] = []
        self.models = experiment.models()
        metrics = experiment.get_metrics()
        greater = dict(zip(metrics["Display Name"], metrics["Greater is Better"], strict=True))
        self.greater_is_better = bool(greater.get(sort, True))

    def run(self, options: dict[str, Any]) -> _Candidate:
        kwargs = dict(options)
        ids = candidate_ids(
            self.models, kwargs.pop("include", None), kwargs.pop("exclude", None), kwargs.pop("turbo", True)
        )
        accepted = set(inspect.signature(self.experiment.create_model).parameters) - {"estimator", "verbose"}
        ignored = sorted(set(kwargs) - accepted)
        if ignored:
            print(f"compare_models options not used when each model runs bounded: {ignored}", flush=True)
        create = {k: v for k, v in kwargs.items() if k in accepted}
        for index, model_id in enumerate(ids):
            self.ctx.progress(0.05 + 0.5 * index / len(ids), f"create_model({model_id!r})")
            self._try(model_id, create)
        if not self.candidates:
            raise StepError("compare_models trained no model within the budget; raise timeBudget")
        sign = 1.0 if self.greater_is_better else -1.0
        return max(self.candidates, key=lambda c: sign * c.metrics.get(self.sort, -sign * math.inf))

    def _try(self, model_id: str, create: dict[str, Any]) -> None:
        name = str(self.models.loc[model_id, "Name"]) if model_id in self.models.index else model_id
        left = self.deadline - time.monotonic()
        if left < 1.0:
            self.rows.append({"id": model_id, "Model": name, "status": "skipped", "reason": "the budget was spent"})
            return
        begun = time.monotonic()
        done, outcome = run_bounded(
            lambda: _call_scored(self.experiment, "create_model", {"estimator": model_id, **create}),
            left,
            self.ctx.work_dir / "candidate.joblib",
        )
        seconds = round(time.monotonic() - begun, 2)
        if not done:
            print(f"{model_id}: {outcome}", flush=True)
            status = "stopped" if outcome.startswith("stopped") else "failed"
            self.rows.append({"id": model_id, "Model": name, "TT (Sec)": seconds, "status": status, "reason": outcome})
            return
        model, metrics = outcome
        self.candidates.append(_Candidate(model_id, model, metrics, seconds))
        self.rows.append({"id": model_id, "Model": name, **metrics, "TT (Sec)": seconds, "status": "finished"})
        print(f"{model_id}: cv {self.sort} {metrics.get(self.sort)} in {seconds:.1f} s", flush=True)

    def leaderboard(self) -> pd.DataFrame:
        board = pd.DataFrame(self.rows)
        if self.sort in board.columns:
            board = board.sort_values(self.sort, ascending=not self.greater_is_better, na_position="last")
        return board.reset_index(drop=True)


def candidate_ids(models: pd.DataFrame, include: Any, exclude: Any, turbo: Any) -> list[str]:
    """The models to compare, the quick and strong ones first (PyCaret's own order starts with knn and svm,
    slow on large tables, and a short budget may end before the later ones)."""
    if include:
        return [str(model) for model in include]
    available = [str(i) for i in models.index if not turbo or bool(models.loc[i, "Turbo"])]
    available = [i for i in available if i not in set(exclude or ())]
    first = [i for i in QUICK_FIRST if i in available]
    return first + [i for i in available if i not in first]


def _call_scored(experiment: Any, method: str, kwargs: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """``experiment.method(**kwargs)`` quietly, and the metrics of the score grid it showed (CV means for
    ``create_model`` and ``tune_model``, holdout scores for ``predict_model``)."""
    result, grid = _call_showing(experiment, method, _quiet_kwargs(experiment, method, kwargs))
    return result, grid_metrics(grid) if grid is not None else {}


def pycaret_metric(metric: str, task: str) -> str:
    if metric in ("auto", ""):
        return DEFAULT_METRIC[task]
    return METRIC_NAMES.get(metric.lower(), metric)


def _tune(
    ctx: StepContext, experiment: Any, best: _Candidate, sort: str, deadline: float
) -> tuple[Any, dict[str, float]]:
    """tune_model with as many iterations as the time left allows (one costs about one cross-validation of
    the winner), stopped at ``deadline`` (PyCaret has no time limit for it): the untuned winner stays then."""
    left = deadline - time.monotonic()
    n_iter = min(50, int(left / max(TUNE_MARGIN * best.seconds, 0.05)))
    if n_iter < 2:
        print(f"not tuning {best.model_id}: {max(left, 0):.0f} s left is too little", flush=True)
        return best.model, {}
    ctx.progress(0.6, f"tune_model ({n_iter} iterations)")
    kwargs = {"estimator": best.model, "n_iter": n_iter, "optimize": sort, "choose_better": True}
    done, outcome = run_bounded(
        lambda: _call_scored(experiment, "tune_model", kwargs), left, ctx.work_dir / "tuned.joblib"
    )
    if not done:
        print(f"tune_model {outcome}; keeping the untuned {best.model_id}", flush=True)
        return best.model, {}
    return outcome


def _with_preprocessing(experiment: Any, model: Any) -> Any:
    """The model behind the experiment's preprocessing (fitted on the training split), as ``finalize_model``
    returns it after a refit and ``save_model`` stores it: ``create_model``'s estimator sees encoded columns."""
    pipeline = copy.deepcopy(experiment.pipeline)
    pipeline.steps.append(("trained_model", model))
    return pipeline


# ----- process hygiene -----------------------------------------------------------------------------


@contextlib.contextmanager
def _headless_plots() -> Iterator[None]:
    """Plots go to files only: the Agg backend, never a window or a notebook display."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """PyCaret warns about deprecations on import and load; that is noise in the step's stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
