"""The worker side of ``automl/compare``: score every engine's model on the same holdout rows and make one
leaderboard; the best model overall becomes this step's output.

The API expands a comparison at POST time into ordinary steps (``api/routes_compare.py``): a ``transform/split``
of the dataset, one ``automl/{engine}`` step per engine on its train rows, and this step, which depends on
all of them. Its tool tolerates failed inputs, so it runs when every engine step has settled, whatever
the outcome; the job carries the state of each input (status, reason, metadata, wall time), and an engine
that failed is a leaderboard row with its reason, not a failed comparison.

The output is a copy of the winning engine step's output plus ``compare.json`` naming its serializer, so
``$comparison`` loads as the winner's own model (``predict/compare`` or ``predict/{engine}`` use it).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.compare.parameters import CompareBody
from automl_orchestra.engines.core.base import (
    Engine,
    StepContext,
    StepError,
    StepResult,
    current_environment,
    foreign_object,
    load_engine,
)
from automl_orchestra.engines.core.calls import MethodEngine, as_scalar
from automl_orchestra.engines.core.foreign import Predictions, predict_elsewhere
from automl_orchestra.engines.core.serving import ServedModel
from automl_orchestra.engines.core.values import list_files

WINNER_FILE = "compare.json"
# Holdout metrics the comparison computes itself (the same way for every engine), and their direction.
HOLDOUT_METRICS = {"roc_auc": True, "accuracy": True, "log_loss": False, "r2": True, "rmse": False, "mae": False}
COLUMNS = [
    "engine", "status", "model", "cvScore", "cvMetric", "holdoutScore", "holdoutMetric", "holdoutAuc",
    "holdoutAccuracy", "fitSeconds", "predictSecondsPerRow", "step", "reason",
]  # fmt: skip


@dataclass
class Candidate:
    engine: str
    step: str
    model: Any = None


class CompareEngine(MethodEngine):
    name = "compare"

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        """The winner's model, read by the serializer of the engine that wrote it."""
        engine, winner_ref = self._winner(ref, local_dir)
        return engine.load(winner_ref, local_dir)

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        """The winner's model as its own engine serves it."""
        engine, winner_ref = self._winner(ref, local_dir)
        return engine.load_served(winner_ref, local_dir)

    def _winner(self, ref: OutputRef, local_dir: Path) -> tuple[Engine, OutputRef]:
        winner = json.loads((local_dir / WINNER_FILE).read_text(encoding="utf-8"))
        spec = catalog.tool(str(winner.get("serializer", "")))
        if spec is not None and spec.environment != current_environment():
            raise StepError(
                f"the comparison's winner is a {spec.name} model (engine environment {spec.environment!r}), which "
                f"cannot be loaded here: use predict/{spec.name} on step {winner.get('step')!r}"
            )
        engine = load_engine(spec.implementation) if spec and spec.implementation else MethodEngine()
        return engine, ref.model_copy(update={"serializer": winner.get("serializer")})

    def automl(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(CompareBody)
        target, task = request.target, request.task
        holdout = _holdout(ctx, request)
        if target not in holdout.columns:
            raise StepError(f"target {target!r} is not a column of the holdout rows")
        metric = holdout_metric(request.metric, task, holdout[target])
        rows = [_score(ctx, candidate, holdout, target, task, metric) for candidate in _candidates(request)]
        rows += [_skipped_row(engine, reason) for engine, reason in (request.skipped or {}).items()]
        board = leaderboard(rows, metric)
        finished = board[board["status"] == "finished"]
        if finished.empty:
            reasons = "; ".join(f"{r.engine}: {r.reason}" for r in board.itertuples())
            raise StepError(f"every engine failed, nothing to compare: {reasons}")
        best = finished.iloc[0]
        output = _copy_winner(ctx, str(best["step"]))
        print(f"best: {best['engine']} ({best['model']}), holdout {metric} {best['holdoutScore']:.4f}", flush=True)
        metadata = {
            "bestEngine": best["engine"],
            "bestStep": best["step"],
            "bestLearner": best["model"],
            "bestScore": as_scalar(best["holdoutScore"]),
            "metric": metric,
            "task": task,
            "holdoutRows": len(holdout),
            "engines": list(board["engine"]),
            "failedEngines": {r.engine: r.reason for r in board.itertuples() if r.status != "finished"},
        }
        metrics = {
            "bestScore": as_scalar(best["holdoutScore"]),
            **{f"holdout_{r.engine}": r.holdoutScore for r in finished.itertuples()},
        }
        return StepResult(output=output, metadata=metadata, metrics=metrics, derived={"leaderboard": board})


def holdout_metric(requested: str, task: str, target: pd.Series) -> str:
    """The metric the holdout rows are scored with: the requested one when we can compute it for every
    engine alike, else ROC AUC (binary), accuracy (multiclass) or R² (regression)."""
    if requested in HOLDOUT_METRICS:
        return requested
    if task != "classification":
        return "r2"
    return "roc_auc" if target.nunique() == 2 else "accuracy"


def _holdout(ctx: StepContext, request: CompareBody) -> pd.DataFrame:
    # Set by the server when it expands the comparison; a body without it was not made by the API.
    if not request.holdoutData:
        raise StepError("parameter 'holdoutData' is required: the '$step' of the holdout rows (set by the server)")
    step = request.holdoutData.lstrip("$").split(".")[0]
    if step not in ctx.job.inputs:
        state = ctx.job.input_states.get(step, {})
        raise StepError(f"the holdout rows ({step!r}) are not available: {state.get('reason') or state.get('status')}")
    frame = ctx.load_step(step)
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise StepError(f"{step!r} holds no holdout rows")
    return frame


def _candidates(request: CompareBody) -> list[Candidate]:
    if not request.candidates:
        raise StepError("parameter 'candidates' (engine -> '$step') is empty: nothing to compare")
    return [Candidate(engine, ref.lstrip("$")) for engine, ref in request.candidates.items()]


def _score(
    ctx: StepContext, candidate: Candidate, holdout: pd.DataFrame, target: str, task: str, metric: str
) -> dict[str, Any]:
    state = ctx.job.input_states.get(candidate.step, {})
    meta = state.get("meta") or {}
    row: dict[str, Any] = {
        "engine": candidate.engine,
        "step": candidate.step,
        "status": state.get("status", "unknown"),
        "model": meta.get("bestLearner"),
        "cvScore": _cv_score(meta),
        "cvMetric": meta.get("metric"),
        "fitSeconds": state.get("wallS"),
        "reason": state.get("reason"),
    }
    if row["status"] not in ("finished", "stale") or candidate.step not in ctx.job.inputs:
        row["status"] = row["status"] if row["status"] not in ("finished", "stale") else "failed"
        row["reason"] = row["reason"] or "the engine step produced no model"
        return row
    try:
        ctx.progress(None, f"scoring {candidate.engine} on {len(holdout)} holdout rows")
        ref = ctx.job.inputs[candidate.step]
        if foreign_object(ref):
            predictions = predict_elsewhere(ctx, ref, holdout, probabilities=task == "classification")
        else:
            predictions = predict_here(ctx.load_step(candidate.step), holdout, task)
        row.update(holdout_scores(predictions, holdout, target, task, metric))
        row["status"] = "finished"
    except Exception as exc:  # noqa: BLE001 - one engine's model that cannot score must not sink the rest
        row["status"], row["reason"] = "failed", f"scoring on the holdout rows failed: {type(exc).__name__}: {exc}"
    return row


def _cv_score(meta: dict[str, Any]) -> float | None:
    metrics = meta.get("metrics") or {}
    for value in (metrics.get("cvScore"), meta.get("bestScore")):
        number = as_scalar(value)
        if number is not None and math.isfinite(number):
            return number
    return None


def predict_here(model: Any, holdout: pd.DataFrame, task: str) -> Predictions:
    """Class probabilities (classification) or predictions of a model loaded in this process, timed."""
    session = getattr(model, "scoring_session", None)  # e.g. H2O: start its JVM once, outside the timing
    with session() if callable(session) else contextlib.nullcontext():
        began = time.perf_counter()
        if task == "classification":
            proba = np.asarray(model.predict_proba(holdout), dtype=float)
            seconds = time.perf_counter() - began
            return Predictions(proba, [str(c) for c in np.asarray(model.classes_)], seconds)
        predicted = np.asarray(model.predict(holdout), dtype=float)
        return Predictions(predicted, None, time.perf_counter() - began)


def holdout_scores(
    predictions: Predictions, holdout: pd.DataFrame, target: str, task: str, metric: str
) -> dict[str, Any]:
    """Holdout score in ``metric`` (plus AUC and accuracy for classification) and predict time per row."""
    from sklearn import metrics as m

    truth = holdout[target]
    scores: dict[str, Any] = {"predictSecondsPerRow": predictions.seconds / max(1, len(holdout))}
    if task == "classification":
        proba, classes = predictions.values, predictions.classes or []
        predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
        labels = truth.astype(str).to_numpy()
        scores["holdoutAccuracy"] = float(np.mean(predicted == labels))
        scores["holdoutAuc"] = _auc(labels, proba, classes)
        values = {
            "accuracy": scores["holdoutAccuracy"],
            "roc_auc": scores["holdoutAuc"],
            "log_loss": _log_loss(labels, proba, classes),
        }
    else:
        y, predicted = truth.to_numpy(dtype=float), predictions.values
        values = {
            "r2": float(m.r2_score(y, predicted)),
            "rmse": float(np.sqrt(m.mean_squared_error(y, predicted))),
            "mae": float(m.mean_absolute_error(y, predicted)),
        }
    scores["holdoutScore"] = values.get(metric)
    scores["holdoutMetric"] = metric
    return scores


def _auc(labels: np.ndarray, proba: np.ndarray, classes: list[str]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    if len(classes) == 2:
        return float(roc_auc_score(labels == classes[1], proba[:, 1]))
    with contextlib.suppress(ValueError):  # a class absent from the holdout rows
        return float(roc_auc_score(labels, proba, multi_class="ovr", labels=classes))
    return None


def _log_loss(labels: np.ndarray, proba: np.ndarray, classes: list[str]) -> float | None:
    from sklearn.metrics import log_loss

    with contextlib.suppress(ValueError):
        return float(log_loss(labels, np.clip(proba, 1e-15, 1.0), labels=classes))
    return None


def _skipped_row(engine: str, reason: Any) -> dict[str, Any]:
    return {"engine": engine, "status": "skipped", "reason": str(reason)}


def leaderboard(rows: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """Finished engines best first (by holdout score in ``metric``), then the failed and skipped ones."""
    board = pd.DataFrame(rows).reindex(columns=COLUMNS)
    higher = HOLDOUT_METRICS.get(metric, True)
    board["_rank"] = pd.to_numeric(board["holdoutScore"], errors="coerce") * (-1 if higher else 1)
    board.loc[board["status"] != "finished", "_rank"] = np.inf
    board = board.sort_values("_rank", kind="stable", na_position="last").drop(columns="_rank")
    numeric = ["cvScore", "holdoutScore", "holdoutAuc", "holdoutAccuracy", "fitSeconds", "predictSecondsPerRow"]
    board[numeric] = board[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    text = [c for c in COLUMNS if c not in numeric]
    board[text] = board[text].astype("string")
    return board.reset_index(drop=True)


def _copy_winner(ctx: StepContext, step: str) -> OutputRef:
    """The winner's stored output, copied into this step's output with ``compare.json`` beside it."""
    ref = ctx.job.inputs[step]
    source = ctx.store.path(ref.prefix)
    if ctx.store.is_local:
        shutil.copytree(source, ctx.output_dir, dirs_exist_ok=True)
    else:
        ctx.store.fs.get(source + "/", str(ctx.output_dir) + "/", recursive=True)
    winner = {"step": step, "serializer": ref.serializer, "kind": ref.kind}
    (ctx.output_dir / WINNER_FILE).write_text(json.dumps(winner), encoding="utf-8")
    return OutputRef(kind=ref.kind, prefix="", files=list_files(ctx.output_dir), attributes=ref.attributes)
