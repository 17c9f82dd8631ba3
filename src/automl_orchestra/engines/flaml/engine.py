"""The ``flaml`` tool: FLAML's ``AutoML`` through the Learning Orchestra services, and the declarative
``automl`` service (dataset + target + budget -> best model, leaderboard, metrics).

``flaml`` itself is imported inside the functions that need it: loading this module (to unpickle a
:class:`FlamlModel`, or to read a JSON output this engine wrote) must not cost FLAML's 2-3 s import.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.automl import AutoMLEngine, AutoMLRequest, SearchOutcome, TrainingData
from automl_orchestra.engines.core.base import StepContext
from automl_orchestra.engines.core.calls import MethodEngine, as_scalar, fitted_summary
from automl_orchestra.engines.core.columns import as_categories, text_columns
from automl_orchestra.engines.core.model import AutoMLModel
from automl_orchestra.engines.core.values import readable_json

# Metrics FLAML maximises: it minimises loss = 1 - metric for them (flaml/automl/automl.py,
# is_to_reverse_metric); every other metric (rmse, mae, mse, log_loss, mape) is itself the loss.
MAXIMIZED_METRICS = frozenset(
    {
        "r2", "accuracy", "roc_auc", "roc_auc_ovr", "roc_auc_ovo", "roc_auc_weighted", "roc_auc_ovr_weighted",
        "roc_auc_ovo_weighted", "f1", "ap", "micro_f1", "macro_f1",
    }
)  # fmt: skip
# fit() arguments the step sets from its own parameters; passing them in "options" would be ambiguous.
RESERVED_OPTIONS = frozenset(
    {"X_train", "y_train", "dataframe", "label", "task", "time_budget", "metric", "seed", "n_jobs"}
)
LOG_FILE = "flaml.log"
# Saving the model and the leaderboard after the search, inside the step's budget.
FINISH_S = 2.0


class FlamlModel(AutoMLModel):
    """A fitted ``flaml.AutoML`` that remembers its feature columns and how to prepare them: the text ones
    are cast to categories, as during training."""

    def __init__(
        self,
        automl: Any = None,
        feature_names: list[str] | None = None,
        categorical: list[str] | None = None,
        target_name: str | None = None,
        task: str = "classification",
    ) -> None:
        self.automl = automl
        self.feature_names = feature_names or []
        self.categorical = categorical or []
        self.target_name = target_name
        self.task = task

    @property
    def best_estimator(self) -> str | None:
        return getattr(self.automl, "best_estimator", None)

    @property
    def best_config(self) -> dict[str, Any] | None:
        return getattr(self.automl, "best_config", None)

    def labels(self) -> Any:
        return self.automl.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return self.best_estimator is not None

    def features(self, X: Any) -> pd.DataFrame:
        return as_categories(self.select(X), self.categorical)

    def predict_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.automl.predict(features, **kwargs))

    def proba_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.automl.predict_proba(features, **kwargs))

    def describe(self) -> dict[str, Any]:
        return {"best_estimator": self.best_estimator, **super().describe()}


# Ray Tune gives the trials still running at its timeout up to 10 s to stop (TuneController's
# _actor_force_cleanup_timeout, fixed): FLAML's parallel search returned ~10 s after its budget.
TUNE_STOP_S = 10.0


class FlamlRequest(AutoMLRequest):
    """The ``automl/flaml`` body: the common request, FLAML's ``options`` and parallel trials."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        self.options = self.options_except(ctx, RESERVED_OPTIONS)
        self.parallel_trials = self.body.parallelTrials

    def fit_arguments(self, ctx: StepContext, nodes: TrialNodes) -> dict[str, Any]:
        parallel: dict[str, Any] = {}
        if self.parallel_trials > 1:
            # FLAML hands concurrent trials to Ray Tune; our callback sees where each one ran. Tune's files go
            # to the step's work directory instead of ~/ray_results. Tune starts a new actor process per trial
            # unless told to reuse them: with FLAML's many short trials that start-up was most of the budget
            # (17 trials in 60 s on adult against 172 sequentially).
            tune_args = {
                "callbacks": [nodes.callback()],
                "storage_path": str(ctx.work_dir / "ray_results"),
                "reuse_actors": True,
            }
            parallel = {"n_concurrent_trials": self.parallel_trials, "use_ray": tune_args}
        return {
            "task": self.task,
            # What is left of the step's budget after loading the data, less saving the model afterwards
            # (and less Ray Tune's wait for the trials still running at its timeout).
            "time_budget": max(
                1.0, round(self.seconds_left() - FINISH_S - (TUNE_STOP_S if self.parallel_trials > 1 else 0.0), 1)
            ),
            "metric": self.metric,
            "seed": self.seed,
            "n_jobs": ctx.cpus,
            "verbose": 1,
            "log_file_name": str(ctx.work_dir / LOG_FILE),
            "mlflow_logging": False,
            # Retrain the best config on all rows only when it fits in the budget: the budget is a promise.
            "retrain_full": "budget",
            **parallel,
            **self.options,
        }


class FlamlEngine(MethodEngine, AutoMLEngine[FlamlRequest]):
    name = "flaml"
    allowed_modules = catalog.TOOLS["flaml"].allowed_modules
    request_class = FlamlRequest

    def configure(self, factory: Callable[..., Any], kwargs: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        kwargs = super().configure(factory, kwargs, ctx)
        if getattr(factory, "__name__", "") == "AutoML":
            # FLAML logs to MLflow whenever MLflow is installed and a run is active: never wanted here.
            kwargs.setdefault("mlflow_logging", False)
        return kwargs

    def summarize(self, fitted: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        metadata, metrics = fitted_summary(fitted)
        automl = fitted.automl if isinstance(fitted, FlamlModel) else fitted
        learner = getattr(automl, "best_estimator", None)
        if learner:
            metadata["bestLearner"] = learner
            metadata["bestConfig"] = readable_json(automl.best_config)
            loss = _finite(getattr(automl, "best_loss", None))
            if loss is not None:
                metadata["bestLoss"] = metrics["bestLoss"] = loss
        return metadata, metrics

    def search(self, ctx: StepContext, request: FlamlRequest, data: TrainingData) -> SearchOutcome:
        frame, decision = data.frame, data.decision
        categorical = text_columns(frame[decision.used])
        features = as_categories(frame[decision.used], categorical)

        from flaml import AutoML

        automl = AutoML()
        nodes = TrialNodes(lambda text: ctx.progress(None, text))
        with nodes.recording(request.parallel_trials):
            automl.fit(X_train=features, y_train=frame[request.target], **request.fit_arguments(ctx, nodes))
        print(f"search done {time.monotonic() - ctx.started:.1f} s into the step's budget", flush=True)
        if isinstance(getattr(automl, "_use_ray", None), dict):
            automl._use_ray = True  # our Tune arguments (the callback) must not be pickled with the model
        if automl.best_estimator is None:
            raise StepError(
                f"no model finished training within the time budget of {request.time_budget:g} s; raise timeBudget"
            )
        model = FlamlModel(automl, decision.used, categorical, request.target, request.task)
        metric = resolved_metric(automl, request.metric)
        best_loss = _finite(automl.best_loss)
        best_score = _score_from_loss(best_loss, metric)
        metadata = {
            "bestConfig": readable_json(automl.best_config),
            "bestLoss": best_loss,
            "timeToBest": _finite(getattr(automl, "time_to_find_best_model", None)),
            "bestConfigTrainTime": _finite(getattr(automl, "best_config_train_time", None)),
            "parallelTrials": request.parallel_trials,
            "trialNodes": dict(nodes.per_node),
        }
        metrics: dict[str, Any] = {"bestLoss": best_loss}
        if getattr(getattr(automl, "_state", None), "eval_method", None) == "cv":
            metrics["cvScore"] = best_score
        board = leaderboard(automl, request.metric, nodes)
        return SearchOutcome(model, board, automl.best_estimator, best_score, metric, metadata, metrics)


class TrialNodes:
    """Where FLAML's trials ran: this host for a sequential search, the Ray Tune result's node otherwise."""

    def __init__(self, progress: Callable[[str], None] = lambda _text: None) -> None:
        self.per_node: Counter[str] = Counter()
        self.per_learner: defaultdict[str, set[str]] = defaultdict(set)
        self.progress = progress

    def record(self, learner: str, node: str) -> None:
        self.per_node[node] += 1
        self.per_learner[learner].add(node)
        self.progress(f"{sum(self.per_node.values())} trial results; last: {learner} on {node}")

    def learner_nodes(self, learner: str) -> str:
        return ",".join(sorted(self.per_learner.get(learner) or {socket.gethostname()}))

    @contextlib.contextmanager
    def recording(self, parallel_trials: int) -> Iterator[None]:
        """Around a search: with parallel trials, leave Ray as found (a worker is reused for the next step).

        With ``RAY_ADDRESS`` set (the Ray executor exports it) Ray Tune joins that cluster, so trials spread
        over its nodes; without it, Ray Tune starts a private instance for this step, stopped here."""
        if parallel_trials <= 1:
            yield
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else Ray writes ~/.ray/auth_token
        import ray

        was_connected = ray.is_initialized()
        try:
            yield
        finally:
            if not was_connected and ray.is_initialized():
                ray.shutdown()

    def callback(self) -> Any:
        from ray.tune import Callback

        recorder = self

        class _Recorder(Callback):
            def on_trial_result(
                self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
            ) -> None:
                config = trial.config or {}
                learner = config.get("ml", config).get("learner", "?")
                recorder.record(str(learner), str(result.get("node_ip") or result.get("hostname") or "?"))

        return _Recorder()


def resolved_metric(automl: Any, requested: str) -> str:
    if requested != "auto":
        return requested
    return str(getattr(getattr(automl, "_state", None), "metric", requested))


def leaderboard(automl: Any, requested_metric: str, nodes: TrialNodes | None = None) -> pd.DataFrame:
    """One row per learner FLAML tried, best first: loss, score, config, timing, iterations, nodes."""
    nodes = nodes or TrialNodes()
    metric = resolved_metric(automl, requested_metric)
    configs = automl.best_config_per_estimator
    states = getattr(automl, "_search_states", {})  # FLAML's per-learner bookkeeping (timing, iterations)
    rows = []
    for learner, loss in automl.best_loss_per_estimator.items():
        state = states.get(learner)
        iterations = int(getattr(state, "total_iter", 0) or 0)
        if state is not None and iterations == 0:
            continue  # listed but never tried within the budget
        best_loss = _finite(loss)
        rows.append(
            {
                "learner": learner,
                "bestLoss": best_loss,
                "bestScore": _score_from_loss(best_loss, metric),
                "bestConfig": json.dumps(readable_json(configs.get(learner)), sort_keys=True),
                "timeToBest": _finite(getattr(state, "time_best_found", None)),
                "totalTime": _finite(getattr(state, "total_time_used", None)),
                "iterations": iterations,
                "nodes": nodes.learner_nodes(learner),
            }
        )
    columns = ["learner", "bestLoss", "bestScore", "bestConfig", "timeToBest", "totalTime", "iterations", "nodes"]
    board = pd.DataFrame(rows, columns=columns)
    board = board.sort_values("bestLoss", na_position="last", kind="stable").reset_index(drop=True)
    return board.astype({"bestLoss": "float64", "bestScore": "float64", "iterations": "int64"})


def _score_from_loss(loss: float | None, metric: str) -> float | None:
    if loss is None:
        return None
    return 1.0 - loss if metric in MAXIMIZED_METRICS or metric.startswith("ndcg") else loss


def _finite(value: Any) -> float | None:
    number = as_scalar(value)
    return number if number is not None and math.isfinite(number) else None
