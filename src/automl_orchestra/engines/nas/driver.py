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
from automl_orchestra.engines.core import params as p
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.nas import generators
from automl_orchestra.nas.data import DataError, DataSettings, load
from automl_orchestra.nas.space import SearchSpace

PHASES = ("generate", "train", "evaluate")
PLOT_FILE = "comparison.png"
MAX_NAME = 128


@dataclass
class SearchRequest:
    parent: str
    generators: list[str]
    trials: int
    time_budget: float
    seed: int
    control: dict[str, Any]
    constraints: dict[str, Any]
    generator_options: dict[str, Any]
    child_limits: dict[str, Any]
    data: DataSettings

    @classmethod
    def from_context(cls, ctx: StepContext) -> SearchRequest:
        params = ctx.params
        names = p.optional_str_list(params, "generators") or ["random", "evolution"]
        known = generators.available()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise StepError(f"unknown generator(s) {unknown}; available: {sorted(known)}")
        shape = params.get("inputShape")
        return cls(
            parent=p.require_str(params, "parentName"),
            generators=names,
            trials=p.optional_int(params, "trials", 10),
            time_budget=p.optional_number(params, "timeBudget", 600.0, minimum=1.0),
            seed=p.optional_int(params, "seed", 1),
            control=p.optional_dict(params, "control"),
            constraints=p.optional_dict(params, "constraints"),
            generator_options=p.optional_dict(params, "generatorOptions"),
            child_limits=p.optional_dict(params, "childLimits"),
            data=DataSettings(
                target=p.optional_str(params, "target"),
                input_shape=tuple(int(v) for v in shape) if shape else None,
                test_size=p.optional_number(params, "testSize", 0.2, minimum=0.01),
                validation_size=p.optional_number(params, "validationSize", 0.1, minimum=0.0),
                max_rows=p.optional_int(params, "maxRows", 0) or None,
                seed=p.optional_int(params, "seed", 1),
            ),
        )


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
    request = SearchRequest.from_context(ctx)
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


def _space(ctx: StepContext, request: SearchRequest) -> SearchSpace:
    """Input shape and classes from the data, control parameters from the request (fixed for all)."""
    try:
        split = load(ctx.load_step(request.parent), request.data)
    except DataError as exc:
        raise StepError(str(exc)) from exc
    kind = "image" if len(split.input_shape) == 3 else "tabular"
    return SearchSpace(kind, split.input_shape, len(split.classes), dict(request.control))


def _round_robin(client: Client, ctx: StepContext, request: SearchRequest, space: SearchSpace) -> list[TrialRecord]:
    """Trial 1 of every generator, then trial 2... Each generator is charged only its own trials' time, so
    none pays for waiting on another, and a cold start (a worker importing PyTorch) is not always charged
    to the first generator's whole search."""
    driver = ctx.job.step_name
    spent = dict.fromkeys(request.generators, 0.0)
    history: dict[str, list[TrialRecord]] = {name: [] for name in request.generators}
    total = request.trials * len(request.generators)
    for trial in range(1, request.trials + 1):
        active = [name for name in request.generators if spent[name] < request.time_budget]
        for name in request.generators:
            if name not in active and len(history[name]) == trial - 1:
                print(f"{name}: time budget spent after {trial - 1} trial(s)", flush=True)
        if not active:
            break
        for name in active:
            steps = {phase: _child(driver, name, trial, phase) for phase in PHASES}
            record = TrialRecord(name, trial, steps, spent[name])
            started = time.monotonic()
            remaining = request.time_budget - spent[name]
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
    request: SearchRequest,
    space: SearchSpace,
    record: TrialRecord,
    history: list[TrialRecord],
    remaining: float,
) -> None:
    """generate -> train -> evaluate as three child steps; a failed child ends the trial with its reason."""
    driver_fields = {"drivenBy": driver, "limits": request.child_limits}
    data_ref = f"${request.parent}"
    bodies = {
        "generate": {
            "generator": record.generator,
            "space": {"kind": space.kind, "inputShape": list(space.input_shape), "classes": space.classes,
                      "control": space.control},
            "history": [{"genome": r.genome, "score": r.score} for r in history if r.genome],
            "seed": request.seed,
            "options": request.generator_options.get(record.generator, {}),
            "constraints": request.constraints,
        },
        "train": {
            "spec": f"${record.steps['generate']}.spec",
            "data": data_ref,
            **_data_fields(request.data),
            "constraints": request.constraints,
            "control": {"maxSeconds": max(1.0, remaining)},
        },
        "evaluate": {"parentName": record.steps["train"], "data": data_ref, "constraints": request.constraints},
    }  # fmt: skip
    for phase in PHASES:
        name = record.steps[phase]
        client.create_step("nas", phase, {"name": name, **bodies[phase], **driver_fields})
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


def _data_fields(settings: DataSettings) -> dict[str, Any]:
    data = settings.to_json()
    fields = {
        "target": data["target"],
        "inputShape": data["inputShape"],
        "testSize": data["testSize"],
        "validationSize": data["validationSize"],
        "maxRows": data["maxRows"],
        "seed": data["seed"],
    }
    return {key: value for key, value in fields.items() if value is not None}


def _child(driver: str, generator: str, trial: int, phase: str) -> str:
    return f"{driver}-{generator}-{trial}-{phase}"


def _remove_previous_children(client: Client, driver: str) -> None:
    """A re-executed driver starts a fresh search: the child steps of its previous run are deleted."""
    lineage = client.lineage(driver)
    children = [e["child"] for e in lineage.get("edges", []) if e["parent"] == driver and e["reference"] == "(driver)"]
    for child in children:
        with contextlib.suppress(NotFoundError):  # already gone with an earlier child's cascade
            client.delete(child, cascade=True)


def _result(ctx: StepContext, request: SearchRequest, records: list[TrialRecord]) -> StepResult:
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
