"""What every ``automl/{engine}`` step shares, written once: the template an engine fills with its search.

:class:`AutoMLEngine` reads the request (the :class:`~automl_orchestra.contracts.parameters.AutoMLBody` the API
validated the body with, seen through :class:`AutoMLRequest`), loads the training table, calls the engine's
:meth:`AutoMLEngine.search`, and turns its :class:`SearchOutcome` into the step's result: the common metadata
keys and metrics and the leaderboard as a derived output. The budget counts from the step's start (loading
the data and imports are in it): an engine reads what is left with :meth:`AutoMLRequest.seconds_left`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, final

import pandas as pd

from automl_orchestra.contracts.budget import budget_reserve_s
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import AutoMLBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.columns import ColumnDecision, select_features
from automl_orchestra.engines.core.model import AutoMLModel


class AutoMLRequest:
    """The declarative ``automl`` body, as the engines use it: a view over ``ctx.request`` with the deadline.

    Each engine's subclass adds its own option handling; ``engines/keras`` reads its own body this way too.
    """

    def __init__(self, ctx: StepContext) -> None:
        # An unknown task is refused here by the model, with the value given and the allowed ones.
        self.body = ctx.request_as(AutoMLBody)
        self.parent = self.body.parentName
        self.target = self.body.target
        self.task: str = self.body.task
        self.metric = self.body.metric
        self.seed = self.body.seed
        self.auto_exclude = self.body.autoExclude
        self.exclude = list(self.body.excludeColumns)
        self.keep = list(self.body.keepColumns)
        self.time_budget = self.body.timeBudget
        _check_budget(self.time_budget, ctx.timeout_s)
        # The budget is the whole step's: what came before the search (loading the data, imports) is in it.
        self.deadline = ctx.started + self.time_budget

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def options_except(self, ctx: StepContext, reserved: frozenset[str]) -> dict[str, Any]:
        """``options`` with their references resolved, refusing those the step sets from its own parameters
        (passing them twice would be ambiguous)."""
        options: dict[str, Any] = ctx.resolve(dict(self.body.options))
        clashes = sorted(reserved & set(options))
        if clashes:
            raise StepError(f"options {clashes} are set by the step itself; use its top-level parameters")
        return options


@dataclass
class TrainingData:
    frame: pd.DataFrame  # rows with a target, index reset
    decision: ColumnDecision  # the feature columns used and those excluded, with reasons


@dataclass
class SearchOutcome:
    """What an engine's search found; the template adds what every engine reports alike."""

    model: AutoMLModel
    leaderboard: pd.DataFrame  # one row per learner or candidate, best first
    best_learner: str
    best_score: float | None
    metric: str  # the name the score is in (the engine's own spelling)
    metadata: dict[str, Any] = field(default_factory=dict)  # the engine's own keys
    metrics: dict[str, Any] = field(default_factory=dict)  # the engine's own metrics, beside bestScore


RequestT = TypeVar("RequestT", bound=AutoMLRequest)


class AutoMLEngine(Engine, Generic[RequestT]):
    """An engine with the declarative ``automl`` service: a subclass names its request class and implements
    :meth:`search`; everything around the search is here, the same for every engine."""

    request_class: type[RequestT]

    @final
    def automl(self, ctx: StepContext) -> StepResult:
        request = self.request_class(ctx)  # the engine's options are checked before the data is loaded
        data = training_data(ctx, request)
        return automl_result(request, data, self.search(ctx, request, data))

    def search(self, ctx: StepContext, request: RequestT, data: TrainingData) -> SearchOutcome:
        """Search within ``request.seconds_left()`` on ``data`` (StepError when nothing was trained)."""
        raise NotImplementedError


def automl_result(request: AutoMLRequest, data: TrainingData, outcome: SearchOutcome) -> StepResult:
    """The step's result: the keys every engine shares (a comparison's leaderboard reads them), then the
    engine's own; the leaderboard as the derived ``{name}_leaderboard`` dataset."""
    metadata = {
        "bestLearner": outcome.best_learner,
        "bestScore": outcome.best_score,
        "metric": outcome.metric,
        "task": request.task,
        "timeBudget": request.time_budget,
        "columns": data.decision.as_metadata(),
        "trainRows": len(data.frame),
        "learners": len(outcome.leaderboard),
        **outcome.metadata,
    }
    metrics = {"bestScore": outcome.best_score, **outcome.metrics}
    return StepResult(
        value=outcome.model, metadata=metadata, metrics=metrics, derived={"leaderboard": outcome.leaderboard}
    )


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
