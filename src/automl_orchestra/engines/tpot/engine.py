"""The ``tpot`` tool: TPOT 1.x estimators through the Learning Orchestra services, and the declarative
``automl`` service.

TPOT 1.x evaluates pipelines on a Dask cluster it starts itself, by default one *process* per ``n_jobs``
-- processes that would re-import ``__main__`` and live outside the worker's process group accounting.
Here the cluster is always in-process (``processes=False``: threads of the worker), sized by the step's CPU
allowance, with Dask's scratch space inside the step's work directory, so the supervisor's memory, time
and kill limits cover everything TPOT does.

``automl/tpot`` is smarter than one TPOT run (the issue measured TPOT alone at 0.88 on GunPoint where a
500-tree forest gets 0.95): strong baselines are cross-validated first, TPOT searches in the remaining
budget, and the best by cross-validation wins -- with the one-standard-error rule: TPOT's best CV score is
the maximum over every pipeline it evaluated, an optimistic estimate on small data (GunPoint: 50 series),
so TPOT replaces the best baseline only when it beats it by more than the standard error of that
baseline's fold scores. ``options: {"baselines": []}`` runs TPOT alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.automl import AutoMLEngine, AutoMLRequest, SearchOutcome, TrainingData
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.bounded import run_bounded
from automl_orchestra.engines.core.calls import MethodEngine, as_scalar, fitted_summary
from automl_orchestra.engines.core.model import AutoMLModel

CODE_FILE = "pipeline.py"
# Levels one-hot encoded per text column (the most frequent ones).
MAX_LEVELS = 50
BASELINES = ("random_forest", "extra_trees")
# TPOT itself overruns max_time_mins (its last generation and final fit come after the deadline): it is
# given (time left - TPOT_FIXED_S) / TPOT_OVERRUN and stopped (killed) at the end of the time left. A
# share of 0.85 left 16 % of a 120 s budget unused (wall/budget 0.84 on GunPoint and BasicMotions).
TPOT_OVERRUN = 1.08
# TPOT's fixed overrun (cluster start and stop, the generation under way, the final fit), measured: a
# 49 s search on GunPoint features did not end within 58 s.
TPOT_FIXED_S = 8.0
# Loading the data, saving the model and the leaderboard, after the search.
FINISH_S = 2.0
# The most of the budget one baseline's cross-validation may take (it is stopped there).
BASELINE_SHARE = 0.3
MIN_BASELINE_S = 10.0  # small budgets: the first baseline may take most of them
# Below this many seconds left, starting TPOT is pointless: its cluster alone takes a few seconds.
MIN_TPOT_S = 8.0
# A shorter evaluation limit times out every pipeline of the first generation on a busy machine.
MIN_EVAL_S = 10.0
# TPOT arguments the step sets from its own parameters and limits.
RESERVED_OPTIONS = frozenset({"n_jobs", "processes", "client", "max_time_mins", "cv", "random_state"})


@contextlib.contextmanager
def contained_dask(work_dir: Path) -> Iterator[None]:
    """Dask scratch space inside the step's work directory (spill files never land in the server's cwd)."""
    import dask

    with dask.config.set({"temporary-directory": str(work_dir / "dask")}):
        yield


def tpot_defaults(kwargs: dict[str, Any], cpus: int) -> dict[str, Any]:
    """Constructor arguments that keep TPOT inside the worker: threads, the step's cores, no progress bar."""
    return {
        "n_jobs": cpus,
        "processes": False,
        "verbose": 0,
        **{k: v for k, v in kwargs.items() if k != "client"},  # a client cannot be given over JSON anyway
    }


class TpotModel(AutoMLModel):
    """The chosen pipeline of ``automl/tpot``: a fitted scikit-learn estimator with its feature columns."""

    def __init__(
        self,
        pipeline: Any = None,
        feature_names: list[str] | None = None,
        target_name: str | None = None,
        task: str = "classification",
        source: str = "",
        classes: list[Any] | None = None,
        categories: dict[str, list[str]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.feature_names = feature_names or []
        self.target_name = target_name
        self.task = task
        self.source = source
        # Classification targets are encoded 0..n-1 for the search (TPOT requires it); these decode them.
        self.classes = classes
        # Text feature columns and their levels: one 0/1 column per level (TPOT's operators need numbers).
        self.categories = categories or {}

    def labels(self) -> Any:
        return self.classes if self.classes is not None else self.pipeline.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return self.pipeline is not None

    def features(self, X: Any) -> np.ndarray:
        """The numeric matrix the pipeline was trained on: numbers as they are, text one-hot encoded."""
        if not isinstance(X, pd.DataFrame):
            return clean_matrix(np.asarray(X, dtype=np.float64))
        X = self.select(X)
        categories = getattr(self, "categories", {})  # models saved before text columns were encoded have none
        numeric = [name for name in self.feature_names if name not in categories]
        parts = [X[numeric].to_numpy(dtype=np.float64)]
        for column, levels in categories.items():
            values = X[column].astype("string").fillna("\x00").to_numpy(dtype=object)  # missing: no level
            parts.append(np.stack([values == level for level in levels], axis=1).astype(np.float64))
        return clean_matrix(np.hstack(parts))

    def predict_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        predicted = np.asarray(self.pipeline.predict(features, **kwargs))
        return np.asarray(self.classes, dtype=object)[predicted.astype(int)] if self.classes is not None else predicted

    def proba_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(features, **kwargs))

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "pipeline": pipeline_text(self.pipeline)}


def one_hot_levels(features: pd.DataFrame) -> dict[str, list[str]]:
    """The levels of every non-numeric feature column, most frequent first (at most MAX_LEVELS; rarer levels,
    like levels unseen in training, encode as all zeros)."""
    levels = {}
    for column in features.columns:
        if pd.api.types.is_numeric_dtype(features[column]) or pd.api.types.is_bool_dtype(features[column]):
            continue
        counts = features[column].dropna().astype("string").value_counts()
        levels[column] = [str(level) for level in counts.index[:MAX_LEVELS]]
    return levels


def encoded_target(target: pd.Series, task: str) -> tuple[np.ndarray, list[Any] | None]:
    """Class labels as 0..n-1 (with the labels to decode them), or the regression target as floats."""
    if task != "classification":
        return target.to_numpy(dtype=np.float64), None
    codes, uniques = pd.factorize(target, sort=True)
    return codes.astype(np.int64), [_plain_label(v) for v in uniques]


def _plain_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def clean_matrix(matrix: np.ndarray) -> np.ndarray:
    """Infinities and NaN as 0: tsfresh features may hold them and most scikit-learn estimators refuse them."""
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)


class TpotRequest(AutoMLRequest):
    """The ``automl/tpot`` body: the common request, the scorer, folds, TPOT's evolution and ``options``
    (``baselines`` among them: the strong baselines TPOT must beat)."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        body = self.body
        default = "accuracy" if self.task == "classification" else "r2"
        self.scoring = body.scoring or (self.metric if self.metric != "auto" else default)
        self.cv = body.cv or 5
        self.generations = body.generations
        self.population_size = body.populationSize
        options = self.options_except(ctx, RESERVED_OPTIONS)
        baselines = options.pop("baselines", list(BASELINES))
        if not isinstance(baselines, list) or any(name not in BASELINES for name in baselines):
            raise StepError(f"options.baselines must be a list of {list(BASELINES)}")
        self.baselines: list[str] = baselines
        self.options = options


class TpotEngine(MethodEngine, AutoMLEngine[TpotRequest]):
    name = "tpot"
    allowed_modules = catalog.TOOLS["tpot"].allowed_modules
    request_class = TpotRequest

    def configure(self, factory: Callable[..., Any], kwargs: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        if (getattr(factory, "__module__", "") or "").startswith("tpot"):
            return tpot_defaults(kwargs, ctx.cpus)
        return super().configure(factory, kwargs, ctx)

    def _fit(self, ctx: StepContext) -> StepResult:
        with contained_dask(ctx.work_dir):
            result = super()._fit(ctx)
        if hasattr(result.value, "_evolver_instance"):
            result.value._evolver_instance = None  # the search's live state (generators): not picklable, not needed
        fitted = getattr(result.value, "fitted_pipeline_", None)
        if fitted is not None:
            (ctx.output_dir / CODE_FILE).write_text(export_code(fitted), encoding="utf-8")
            result.metadata["pipeline"] = pipeline_text(fitted)
        return result

    def summarize(self, fitted: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        metadata, metrics = fitted_summary(fitted)
        board = getattr(fitted, "evaluated_individuals", None)
        if isinstance(board, pd.DataFrame):
            metadata["evaluatedPipelines"] = len(board)
        return metadata, metrics

    def search(self, ctx: StepContext, request: TpotRequest, data: TrainingData) -> SearchOutcome:
        frame, decision = data.frame, data.decision
        categories = one_hot_levels(frame[decision.used])
        for column, levels in categories.items():
            print(f"one-hot encoding text column {column!r} ({len(levels)} levels)", flush=True)
        y, classes = encoded_target(frame[request.target], request.task)
        model = TpotModel(None, decision.used, request.target, request.task, "", classes, categories)
        X = model.features(frame)
        search = _Search(request, ctx, X, y, deadline=request.deadline)
        best = search.run()
        model.pipeline, model.source = best.estimator, best.name
        (ctx.output_dir / CODE_FILE).write_text(export_code(best.estimator), encoding="utf-8")
        metadata = {
            "cv": request.cv,
            "pipeline": pipeline_text(best.estimator),
            "trainShape": [len(frame), len(decision.used)],
            "oneHot": {column: len(levels) for column, levels in categories.items()},
            "cvScores": search.extra_scores(),
            "cvMetrics": best.metrics,
            "selection": search.selection,
            "codeFile": CODE_FILE,
        }
        metrics = {"cvScore": best.score, **search.extra_scores()}
        board = search.leaderboard()
        return SearchOutcome(model, board, best.name, best.score, request.scoring, metadata, metrics)


@dataclass
class _Candidate:
    name: str
    estimator: Any
    score: float
    seconds: float
    source: str
    fitted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)  # mean CV accuracy / roc_auc, for reports
    standard_error: float = 0.0  # of the search metric's fold scores (baselines)


class _Search:
    """Baselines by cross-validation, then TPOT within what is left of the budget; the best CV score wins."""

    def __init__(self, settings: TpotRequest, ctx: StepContext, X: np.ndarray, y: np.ndarray, deadline: float):
        self.settings = settings
        self.ctx = ctx
        self.X = X
        self.y = y
        self.deadline = deadline
        self.candidates: list[_Candidate] = []
        self.tpot_rows: pd.DataFrame | None = None
        self.tpot_objective = ""
        self.tpot_status = "not run"
        self.baseline_status: dict[str, str] = {}  # baselines that did not finish, and why
        self.selection = ""

    def run(self) -> _Candidate:
        for name in self.settings.baselines:
            self._baseline(name)
        self._tpot()
        if not self.candidates:
            raise StepError(
                f"no pipeline finished within the time budget of {self.settings.time_budget:g} s; raise timeBudget"
            )
        best, self.selection = choose_winner(self.candidates)
        if not best.fitted:
            best.estimator.fit(self.X, self.y)
            best.fitted = True
        left = self.deadline - time.monotonic() - FINISH_S
        if set(self._report_scorers()) - set(best.metrics) and left > 2.0:
            # A TPOT winner was scored on one metric only; the report metrics cost one more CV of it, if it fits.
            estimator = clone(best.estimator)
            done, outcome = run_bounded(lambda: self._cv(estimator), left, self.ctx.work_dir / "report.joblib")
            if done:
                best.metrics = outcome[0]
        print(f"best: {best.name} (cv {self.settings.scoring} {best.score:.4f}); {self.selection}", flush=True)
        return best

    def _baseline(self, name: str) -> None:
        # Each baseline's cross-validation gets a share of the budget: on a large table (adult: 26k rows,
        # 100 one-hot columns, one CPU) two 500-tree forests alone took 140 s of a 60 s budget.
        share = max(self.settings.time_budget * BASELINE_SHARE, MIN_BASELINE_S)
        limit = min(share, self.deadline - time.monotonic() - FINISH_S)
        if limit < 2.0:
            self.baseline_status[name] = "skipped: no time left in the budget"
            return
        estimator = baseline_estimator(name, self.settings.task, self.settings.seed, self.ctx.cpus)
        done, outcome = run_bounded(lambda: self._cv(estimator), limit, self.ctx.work_dir / f"{name}.joblib")
        if not done:
            self.baseline_status[name] = f"cross-validation {outcome}"
            print(f"{name}: cross-validation {outcome}", flush=True)
            return
        means, seconds, error = outcome
        score = means[self.settings.scoring]
        candidate = _Candidate(name, estimator, score, seconds, "baseline", metrics=means, standard_error=error)
        self.candidates.append(candidate)
        self.ctx.progress(None, f"{name}: cv {self.settings.scoring} {score:.4f} (standard error {error:.4f})")

    def _report_scorers(self) -> list[str]:
        if self.settings.task != "classification":
            return []
        return ["accuracy", "roc_auc"] if len(np.unique(self.y)) == 2 else ["accuracy"]

    def _cv(self, estimator: Any) -> tuple[dict[str, float], float, float]:
        """Mean CV score per scorer (the search metric and the report metrics, from the same fits), the
        seconds it took, and the standard error of the search metric's fold scores."""
        from sklearn.model_selection import cross_validate

        scorers = list(dict.fromkeys([self.settings.scoring, *self._report_scorers()]))
        began = time.monotonic()
        scores = cross_validate(estimator, self.X, self.y, cv=self._folds(), scoring=scorers)
        means = {name: float(np.mean(scores[f"test_{name}"])) for name in scorers}
        folds = np.asarray(scores[f"test_{self.settings.scoring}"], dtype=float)
        error = float(np.std(folds, ddof=1) / math.sqrt(len(folds))) if len(folds) > 1 else 0.0
        return means, time.monotonic() - began, error

    def _folds(self) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter = StratifiedKFold if self.settings.task == "classification" else KFold
        return splitter(n_splits=self.settings.cv, shuffle=True, random_state=self.settings.seed)

    def _tpot(self) -> None:
        left = self.deadline - time.monotonic()
        # The final fit of a baseline (when one wins) must fit in the budget too: keep its CV time / folds.
        reserve = max((c.seconds / self.settings.cv * 1.5 for c in self.candidates), default=0.0) + FINISH_S
        hard_limit = left - reserve
        tpot_time = (hard_limit - TPOT_FIXED_S) / TPOT_OVERRUN
        if tpot_time < MIN_TPOT_S:
            self.tpot_status = f"skipped: {left:.0f} s of the budget left after the baselines"
            print(f"skipping TPOT: {left:.0f} s left of the budget", flush=True)
            return
        began = time.monotonic()
        outcome = fit_tpot_bounded(self.settings, self.ctx, self.X, self.y, tpot_time, hard_limit)
        seconds = time.monotonic() - began
        if outcome is None:
            self.tpot_status = f"stopped: no result within its {tpot_time:.0f} s (see the step's log)"
            return
        fitted, self.tpot_rows, self.tpot_objective = outcome
        print(f"TPOT ran {seconds:.1f} s of {tpot_time:.1f} s given", flush=True)
        score = _best_tpot_score(self.tpot_rows, self.tpot_objective)
        if fitted is not None and score is not None:
            self.candidates.append(_Candidate("tpot", fitted, score, seconds, "tpot", fitted=True))
            self.tpot_status = "finished"
        else:
            self.tpot_status = "stopped: TPOT returned no scored pipeline"

    def extra_scores(self) -> dict[str, float]:
        return {f"cv_{c.name}": c.score for c in self.candidates}

    def leaderboard(self) -> pd.DataFrame:
        rows = [
            {
                "learner": c.name,
                "source": c.source,
                "bestScore": c.score,
                "standardError": c.standard_error if c.source == "baseline" else None,
                "pipeline": pipeline_text(c.estimator),
            }
            for c in self.candidates
        ]
        rows.extend(
            {"learner": name, "source": "baseline", "bestScore": None, "pipeline": "", "status": status}
            for name, status in self.baseline_status.items()
        )
        rows.extend(_tpot_rows(self.tpot_rows, self.tpot_objective))
        if self.tpot_status != "finished":  # a TPOT search that gave no pipeline is recorded, not hidden
            rows.append(
                {"learner": "tpot", "source": "tpot", "bestScore": None, "pipeline": "", "status": self.tpot_status}
            )
        board = pd.DataFrame(rows, columns=["learner", "source", "bestScore", "standardError", "pipeline", "status"])
        board["status"] = board["status"].fillna("finished")
        return board.sort_values("bestScore", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def choose_winner(candidates: list[_Candidate]) -> tuple[_Candidate, str]:
    """The best baseline, unless TPOT beats it by more than one standard error (module docstring); and why."""
    baselines = [c for c in candidates if c.source == "baseline"]
    searched = [c for c in candidates if c.source != "baseline"]
    if not baselines or not searched:
        best = max(candidates, key=lambda c: c.score)
        return best, f"{best.name}: the best cross-validation score"
    baseline = max(baselines, key=lambda c: c.score)
    rival = max(searched, key=lambda c: c.score)
    margin = baseline.standard_error
    if rival.score > baseline.score + margin:
        return rival, (
            f"{rival.name}: cv {rival.score:.4f} beats {baseline.name}'s {baseline.score:.4f} by more than "
            f"one standard error ({margin:.4f})"
        )
    return baseline, (
        f"{baseline.name}: {rival.name}'s cv {rival.score:.4f} is within one standard error ({margin:.4f}) "
        f"of {baseline.name}'s {baseline.score:.4f}"
    )


def fit_tpot_bounded(
    settings: TpotRequest, ctx: StepContext, X: np.ndarray, y: np.ndarray, seconds: float, hard_limit: float
) -> tuple[Any, pd.DataFrame | None, str] | None:
    """TPOT's search bounded by ``hard_limit`` (:func:`run_bounded`): (fitted pipeline, evaluated rows,
    objective column), or None when it failed or was stopped.

    TPOT overruns ``max_time_mins`` (3-13 % measured directly, over 50 % on a busy machine): its last
    generation and final fit come after the deadline, and an evaluation running in a thread cannot be
    interrupted; stopped, the baselines compete alone.
    """
    done, outcome = run_bounded(
        lambda: _fit_tpot(settings, ctx.cpus, ctx.work_dir, X, y, seconds), hard_limit, ctx.work_dir / "tpot.joblib"
    )
    if not done:
        print(f"TPOT {outcome}: the baselines compete alone", flush=True)
        return None
    result: tuple[Any, pd.DataFrame | None, str] = outcome
    return result


def _fit_tpot(
    settings: TpotRequest, cpus: int, work_dir: Path, X: np.ndarray, y: np.ndarray, seconds: float
) -> tuple[Any, pd.DataFrame | None, str]:
    began = time.monotonic()
    estimator = make_tpot(settings, cpus, seconds)
    with contained_dask(work_dir):
        estimator.fit(X, y)
    print(f"TPOT search and final fit: {time.monotonic() - began:.1f} s", flush=True)
    rows = getattr(estimator, "evaluated_individuals", None)
    # TPOT names its objective columns after the scorer function (accuracy -> "accuracy_score").
    objective = str(getattr(estimator, "objective_names", [settings.scoring])[0])
    if isinstance(rows, pd.DataFrame):
        rows = rows[[column for column in (objective, "Instance") if column in rows.columns]]
    return getattr(estimator, "fitted_pipeline_", None), rows, objective


def _tpot_rows(evaluated: Any, scoring: str) -> list[dict[str, Any]]:
    if not isinstance(evaluated, pd.DataFrame) or scoring not in evaluated.columns:
        return []
    rows = []
    for _, row in evaluated.iterrows():
        score = as_scalar(row[scoring])
        if score is None or not math.isfinite(score):
            continue
        rows.append({"learner": "tpot candidate", "source": "tpot", "bestScore": score, "pipeline": _individual(row)})
    return rows


def _individual(row: pd.Series) -> str:
    instance = row.get("Instance")
    return pipeline_text(instance) if isinstance(instance, BaseEstimator) else str(row.get("Individual"))[:2000]


def _best_tpot_score(evaluated: Any, scoring: str) -> float | None:
    if not isinstance(evaluated, pd.DataFrame) or scoring not in evaluated.columns:
        return None
    values = pd.to_numeric(evaluated[scoring], errors="coerce")
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else None


def baseline_estimator(name: str, task: str, seed: int, cpus: int) -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    classes = {
        ("random_forest", "classification"): RandomForestClassifier,
        ("random_forest", "regression"): RandomForestRegressor,
        ("extra_trees", "classification"): ExtraTreesClassifier,
        ("extra_trees", "regression"): ExtraTreesRegressor,
    }
    return classes[(name, task)](n_estimators=500, random_state=seed, n_jobs=cpus)


def default_population(seconds: float) -> int:
    """TPOT's default population (50) from a minute of search on, proportionally fewer below (at least 8)."""
    return int(min(50, max(8, seconds * 50 / 60)))


def make_tpot(settings: TpotRequest, cpus: int, seconds: float) -> Any:
    from tpot import TPOTClassifier, TPOTRegressor

    factory = TPOTClassifier if settings.task == "classification" else TPOTRegressor
    arguments: dict[str, Any] = {
        "scorers": [settings.scoring],
        "scorers_weights": [1],
        "cv": settings.cv,
        "max_time_mins": seconds / 60.0,
        # A stuck evaluation outlives the search deadline by up to this much (threads cannot be killed).
        "max_eval_time_mins": max(seconds / 8, MIN_EVAL_S) / 60.0,
        "random_state": settings.seed,
        **settings.options,
    }
    if settings.generations is not None:
        arguments["generations"] = settings.generations
    # TPOT finishes its current generation before it checks the clock: with its default population of 50,
    # a 15 s search ran 35 s here. Short searches get a smaller population so a generation fits.
    arguments["population_size"] = settings.population_size or default_population(seconds)
    return factory(**tpot_defaults(arguments, cpus))


# ----- readable code ---------------------------------------------------------------------------------


def pipeline_text(estimator: Any) -> str:
    """The full scikit-learn repr (not the 700-character abbreviation), changed parameters only."""
    if estimator is None:
        return ""
    from sklearn import config_context

    with config_context(print_changed_only=True):
        try:
            return str(estimator.__repr__(N_CHAR_MAX=100_000))
        except TypeError:
            return repr(estimator)


def export_code(estimator: Any) -> str:
    """A runnable Python file that rebuilds the (unfitted) pipeline: imports, then the constructor call."""
    imports = sorted({f"from {cls.__module__} import {cls.__name__}" for cls in _classes(estimator)})
    return "\n".join(
        [
            '"""The pipeline chosen by automl/tpot, as scikit-learn code. Fit it with pipeline.fit(X, y)."""',
            "",
            "import numpy as np  # noqa: F401 - parameters may be numpy values",
            *imports,
            "",
            f"pipeline = {pipeline_text(estimator)}",
            "",
        ]
    )


def _classes(estimator: Any) -> set[Any]:
    """Classes of every estimator in the pipeline, and functions it holds (``SelectKBest(f_classif)``)."""
    found: set[Any] = set()
    stack = [estimator]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseEstimator):
            found.add(type(item))
            stack.extend(item.get_params(deep=False).values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif _library_function(item):
            found.add(item)
    return found


def _library_function(item: Any) -> bool:
    module = getattr(item, "__module__", None)
    named = isinstance(getattr(item, "__name__", None), str)
    return callable(item) and named and isinstance(module, str) and module.split(".")[0] in ("sklearn", "tpot")
