"""``automl/nas``: AMLA's Scheduler as a driver step. For each generator it runs the loop
generate -> train -> evaluate as child steps through the REST API (so each runs on any worker, or on Ray),
feeding every evaluation back as history, until the trial count or the time budget is spent. Every
generator gets the same data, search space, control parameters, budget and seed; the result is a
leaderboard (every trial), a comparison table (one row per generator) and a PNG of accuracy over time.

The child steps name the driver in ``drivenBy``, so the lineage shows them under it without making the
driver an input they would wait for (see docs/architecture.md, "Driver steps").
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from automl_orchestra.client import Client, NotFoundError
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import StepBody
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.nas.parameters import (
    NasControl,
    NasEvaluateBody,
    NasGenerateBody,
    NasSearchBody,
    NasSpaceBody,
    NasTrainBody,
)
from automl_orchestra.nas import generators
from automl_orchestra.nas.data import DataError, load
from automl_orchestra.nas.space import SearchSpace

PHASES = ("generate", "train", "evaluate")
PLOT_FILE = "comparison.png"
MAX_NAME = 128


def search_request(ctx: StepContext) -> NasSearchBody:
    """The ``automl/nas`` request; its generators must be installed in this worker's environment (the API
    checks only their names' shape)."""
    request = ctx.request_as(NasSearchBody)
    known = generators.available()
    unknown = [name for name in request.generators if name not in known]
    if unknown:
        raise StepError(f"unknown generator(s) {unknown}; available: {sorted(known)}")
    return request


@dataclass
class TrialRecord:
    generator: str
    trial: int
    steps: dict[str, str]
    started_s: float  # time the generator had spent on its earlier trials
    status: str = "finished"
    reason: str | None = None
    genome: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def score(self) -> float | None:
        value = self.metrics.get("score")
        return None if self.status != "finished" or value is None else float(value)

    def row(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "generator": self.generator,
            "trial": self.trial,
            "status": self.status,
            "accuracy": m.get("accuracy"),
            "score": self.score,
            "rejected": bool(m.get("rejected")),
            "parameters": m.get("parameters"),
            "multiplyAdds": m.get("multiplyAdds"),
            "latencyMsPerSample": m.get("latencyMsPerSample"),
            "peakMemoryMb": m.get("peakMemoryMb"),
            "trainSeconds": m.get("trainSeconds"),
            "elapsedS": round(self.elapsed_s, 3),
            "reason": self.reason or m.get("overBudget"),
            "evaluateStep": self.steps["evaluate"],
        }


def run_search(ctx: StepContext) -> StepResult:
    request = search_request(ctx)
    driver = ctx.job.step_name
    if not ctx.job.api_url:
        raise StepError("automl/nas creates its trials as steps through the API, but this job carries no API URL")
    space = _space(ctx, request)
    longest = max(len(_child(driver, g, request.trials, phase)) for g in request.generators for phase in PHASES)
    if longest > MAX_NAME:
        raise StepError(f"the step name {driver!r} is too long for its child steps' names: use at most ~90 characters")
    with Client(ctx.job.api_url, token=ctx.job.api_token, timeout=60.0) as client:
        _remove_previous_children(client, driver)
        records = _round_robin(client, ctx, request, space)
    return _result(ctx, request, records)


def _space(ctx: StepContext, request: NasSearchBody) -> SearchSpace:
    """Input shape and classes from the data, control parameters from the request (fixed for all)."""
    try:
        split = load(ctx.load_step(request.parentName), request.data_settings())
    except DataError as exc:
        raise StepError(str(exc)) from exc
    kind = "image" if len(split.input_shape) == 3 else "tabular"
    return SearchSpace(kind, split.input_shape, len(split.classes), request.control.model_dump(exclude_none=True))


def _round_robin(client: Client, ctx: StepContext, request: NasSearchBody, space: SearchSpace) -> list[TrialRecord]:
    """Trial 1 of every generator, then trial 2... Each generator is charged only its own trials' time, so
    none pays for waiting on another, and a cold start (a worker importing PyTorch) is not always charged
    to the first generator's whole search."""
    driver = ctx.job.step_name
    spent = dict.fromkeys(request.generators, 0.0)
    history: dict[str, list[TrialRecord]] = {name: [] for name in request.generators}
    total = request.trials * len(request.generators)
    for trial in range(1, request.trials + 1):
        active = [name for name in request.generators if spent[name] < request.timeBudget]
        for name in request.generators:
            if name not in active and len(history[name]) == trial - 1:
                print(f"{name}: time budget spent after {trial - 1} trial(s)", flush=True)
        if not active:
            break
        for name in active:
            steps = {phase: _child(driver, name, trial, phase) for phase in PHASES}
            record = TrialRecord(name, trial, steps, spent[name])
            started = time.monotonic()
            remaining = request.timeBudget - spent[name]
            _run_trial(client, driver, request, space, record, history[name], remaining=remaining)
            spent[name] += time.monotonic() - started
            record.elapsed_s = spent[name]
            history[name].append(record)
            done = sum(len(records) for records in history.values())
            ctx.progress(done / total, f"{name} trial {trial}: {record.status}, score {record.score}")
    return [record for name in request.generators for record in history[name]]


def _run_trial(
    client: Client,
    driver: str,
    request: NasSearchBody,
    space: SearchSpace,
    record: TrialRecord,
    history: list[TrialRecord],
    remaining: float,
) -> None:
    """generate -> train -> evaluate as three child steps; a failed child ends the trial with its reason."""
    bodies = _child_bodies(driver, request, space, record, history, remaining)
    for phase in PHASES:
        name = record.steps[phase]
        client.create_step("nas", phase, bodies[phase].model_dump(mode="json", exclude_none=True))
        document = client.wait(name, raise_on_failure=False)
        if document["status"] != "finished":
            record.status = "failed"
            record.reason = f"{phase}: {(document.get('error') or {}).get('reason') or document['status']}"
            print(f"{name}: {record.reason}", flush=True)
            return
        if phase == "generate":
            record.genome = client.content("nas", "generate", name)[1]["genome"]
        if phase == "evaluate":
            record.metrics = document.get("metrics") or {}


def _child_bodies(
    driver: str,
    request: NasSearchBody,
    space: SearchSpace,
    record: TrialRecord,
    history: list[TrialRecord],
    remaining: float,
) -> dict[str, StepBody]:
    """The requests of one trial's child steps, built with their own models (so a body the API would refuse
    fails here, naming the field). Every generator gets the same space, data, split and constraints."""
    steps, data_ref = record.steps, f"${request.parentName}"
    lineage: dict[str, Any] = {"drivenBy": driver, "limits": request.childLimits}
    space_body = NasSpaceBody(
        kind=space.kind, inputShape=list(space.input_shape), classes=space.classes, control=request.control
    )
    return {
        "generate": NasGenerateBody(
            name=steps["generate"],
            generator=record.generator,
            space=space_body,
            history=[{"genome": r.genome, "score": r.score} for r in history if r.genome],
            seed=request.seed,
            options=request.generatorOptions.get(record.generator, {}),
            constraints=request.constraints,
            **lineage,
        ),
        "train": NasTrainBody(
            name=steps["train"],
            spec=f"${steps['generate']}.spec",
            data=data_ref,
            constraints=request.constraints,
            control=NasControl(maxSeconds=max(1.0, remaining)),  # the generator's budget left bounds training
            **request.data_fields(),
            **lineage,
        ),
        "evaluate": NasEvaluateBody(
            name=steps["evaluate"], parentName=steps["train"], data=data_ref, constraints=request.constraints, **lineage
        ),
    }


def _child(driver: str, generator: str, trial: int, phase: str) -> str:
    return f"{driver}-{generator}-{trial}-{phase}"


def _remove_previous_children(client: Client, driver: str) -> None:
    """A re-executed driver starts a fresh search: the child steps of its previous run are deleted."""
    lineage = client.lineage(driver)
    children = [e["child"] for e in lineage.get("edges", []) if e["parent"] == driver and e["reference"] == "(driver)"]
    for child in children:
        with contextlib.suppress(NotFoundError):  # already gone with an earlier child's cascade
            client.delete(child, cascade=True)


def _result(ctx: StepContext, request: NasSearchBody, records: list[TrialRecord]) -> StepResult:
    from automl_orchestra.nas.report import comparison_table, plot_accuracy_over_time

    board = pd.DataFrame([r.row() for r in records])
    if board.empty:
        raise StepError("no trial ran: the time budget or the trial count is too small")
    comparison = comparison_table(board, request.generators)
    plot_accuracy_over_time(board, ctx.output_dir / PLOT_FILE, ctx.work_dir)
    scored = board[board["score"].notna()]
    if scored.empty:
        raise StepError(
            f"every trial failed or was rejected; first reason: {board['reason'].dropna().head(1).tolist()}"
        )
    best = scored.sort_values(["score", "elapsedS"], ascending=[False, True]).iloc[0]
    best_row = {k: (None if pd.isna(v) else v) for k, v in best.to_dict().items()}
    metadata = {
        "bestGenerator": best_row["generator"],
        "bestTrial": int(best["trial"]),
        "bestStep": best_row["evaluateStep"],
        "generators": request.generators,
        "trials": len(board),
        "plot": PLOT_FILE,
        "comparison": comparison.to_dict(orient="records"),
    }
    metrics = {"bestAccuracy": best_row["accuracy"], "bestScore": best_row["score"], "trials": len(board)}
    value = {"best": best_row, "comparison": comparison.to_dict(orient="records"), "plot": PLOT_FILE}
    return StepResult(
        value=value, metadata=metadata, metrics=metrics, derived={"leaderboard": board, "comparison": comparison}
    )
