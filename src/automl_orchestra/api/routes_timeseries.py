"""The seed's time-series service on top of the step model: train from raw series + labels + a parameter
file, list the trained pipelines, predict by pipeline id.

Training only creates ordinary steps (``dataset/timeseries`` -> ``transform/tsfresh`` extract ->
``transform/tsfresh`` select -> ``automl/tpot``) and waits for them like ``/observe`` does; the steps are
visible, re-executable and deletable, and a pipeline is simply the ``automl/tpot`` step ``ts-{modelId}``, so
everything survives a restart. A finished pipeline is registered as a version of the model ``ts-{modelId}``
(steps/registry.py), and a prediction is answered by that version's serving worker (runtime/serving_pool.py):
the uploaded series are read as ``dataset/timeseries`` reads them, their features extracted with the
pipeline's own feature settings, and classified -- no step is created. Uploads are checked here, before
anything is stored: a labels file whose ids do not match the series is refused with 422 and leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from automl_orchestra.api import examples
from automl_orchestra.api.datasets import _safe_filename, delete_upload
from automl_orchestra.api.dependencies import (
    EditorRole,
    Orchestra,
    OrchestraDep,
    ViewerRole,
    checked_step,
    require_viewer,
)
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.api.routes_serving import serve
from automl_orchestra.contracts.parameters import (
    MAX_DEPTH,
    MAX_SHORT,
    AutoMLBody,
    Limits,
    MethodBody,
    StepBody,
)
from automl_orchestra.contracts.serving import SERIES_FORMAT, PredictCall, SeriesFile, ServedVersion
from automl_orchestra.runtime.events import wait_for
from automl_orchestra.steps.documents import step_document
from automl_orchestra.steps.errors import NotFound
from automl_orchestra.steps.registry import Registration, RegistryService
from automl_orchestra.steps.served import served_version
from automl_orchestra.steps.service import NewStep
from automl_orchestra.store.artifacts import step_prefix
from automl_orchestra.store.models import SETTLED, Step

PREFIX = "ts-"
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$"
LABEL = "label"
FAILED = frozenset({"failed", "cancelled"})
# How long a request waits beyond the search budget for ingest, features and saving before answering 202.
EXTRA_WAIT_S = 600.0
# Steps get one core unless told otherwise; the service's heavy steps (features, search) use the machine's.
SEARCH_CPUS = max(1, min(os.cpu_count() or 1, 16))
# The largest parameter file (a few lines of YAML in practice).
MAX_PARAMS_BYTES = 64 * 1024


class ExtractParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    default_fc_parameters: Annotated[str, Field(max_length=MAX_SHORT)] | dict[str, Any] = "efficient"
    column_id: str = Field(default="id", max_length=MAX_SHORT)
    column_sort: str = Field(default="time", max_length=MAX_SHORT)


class TpotParams(BaseModel):
    """TPOT settings of the parameter file; TPOT's own names are accepted beside the step's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeBudget: float = Field(default=120.0, gt=0, alias="max_time_s")
    generations: int | None = Field(default=None, ge=1)
    populationSize: int | None = Field(default=None, ge=2, alias="population_size")
    cv: int = Field(default=5, ge=2, le=100)
    scoring: str = Field(default="accuracy", max_length=MAX_SHORT)
    seed: int = Field(default=1, alias="random_state")
    baselines: list[str] | None = Field(default=None, description="strong baselines cross-validated before TPOT")


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: Annotated[str, Field(pattern=MODEL_ID)] | Annotated[int, Field(ge=0, le=10**18)] | None = Field(
        default=None, description="the model id: letters, digits, '_' and '-', at most 101 characters"
    )
    extract_features: ExtractParams = Field(default_factory=ExtractParams)
    select_features: bool = True
    tpot: TpotParams = Field(default_factory=TpotParams)


TRAINED = {
    "result": {
        "modelId": "2",
        "status": "finished",
        "trainShape": [50, 38],
        "mean_cv_accuracy": 0.96,
        "mean_cv_roc_auc": 0.99,
        "modelType": "Pipeline(steps=[('standardscaler', StandardScaler()), ('svc', SVC(C=10.0))])",
        "bestLearner": "tpot",
        "metric": "accuracy",
        "cvScore": 0.96,
        "createdAt": "2026-01-01T00:00:00Z",
        "step": "ts-2",
        "trainTime": 131.2,
        "steps": ["ts-2-raw", "ts-2-labels", "ts-2-features", "ts-2-selected", "ts-2"],
        "modelVersion": {"name": "ts-2", "version": 1, "url": "/api/v1/models/ts-2/versions/1"},
    }
}
PREDICTED = {"result": {"0": "normal", "1": "collision"}, "model": "ts-2", "version": 1}
MODELS = {"result": [TRAINED["result"]]}


def _multipart(*files: str, params: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"type": "string", "format": "binary"} for name in files}
    if params:
        properties["params"] = {"type": "string", "format": "binary", "description": "YAML or JSON parameters"}
    schema = {"type": "object", "required": ["raw_data"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


@dataclass
class Upload:
    filename: str
    data: bytes

    @property
    def is_ts(self) -> bool:
        return self.filename.lower().endswith(".ts")


def router() -> APIRouter:
    api = APIRouter(prefix="/timeseries", tags=["timeseries"])
    model_path = Path(pattern=MODEL_ID, description="the pipeline id given at training")

    @api.post(
        "/train",
        summary="Train a pipeline from raw series, labels and a parameter file (multipart)",
        responses=examples.ok(TRAINED),
        openapi_extra=_multipart("raw_data", "labels", params=True),
    )
    async def train(request: Request, orchestra: OrchestraDep, role: EditorRole) -> dict[str, Any]:
        async with request.form(max_files=3, max_fields=8) as form:  # closes the spooled files at once
            params = _train_params(form.get("params"), await _optional_text(form.get("params")))
            raw = await _upload(form.get("raw_data"), "raw_data", orchestra.settings.max_upload_mb)
            labels_field = form.get("labels")
            labels = await _upload(labels_field, "labels", orchestra.settings.max_upload_mb) if labels_field else None
        await asyncio.to_thread(check_ids, raw, labels, params.extract_features.column_id)
        model_id = str(params.pipeline_id) if params.pipeline_id is not None else uuid.uuid4().hex[:8]
        steps = await asyncio.to_thread(_create_training, orchestra, role, model_id, params, raw, labels)
        started = time.monotonic()
        settled = await wait_settled(orchestra, steps, params.tpot.timeBudget + EXTRA_WAIT_S)
        report = training_report(orchestra, settled[-1], model_id, time.monotonic() - started, settled)
        if settled[-1].status == "finished":
            version = await asyncio.to_thread(register_pipeline, orchestra, settled[-1], role)
            report["modelVersion"] = {"name": version["model"], "version": version["version"], "url": version["url"]}
        return {"result": report}

    @api.post(
        "/{model_id}/predict",
        summary="Predict raw series with a trained pipeline's registered version: {series_id: label}",
        responses=examples.ok(PREDICTED, errors=(409, 413, 422, 429, 503)),  # 409: the pipeline is not finished
        openapi_extra=_multipart("raw_data"),
    )
    async def predict(
        request: Request, orchestra: OrchestraDep, role: ViewerRole, model_id: str = model_path
    ) -> dict[str, Any]:
        version = await asyncio.to_thread(served_pipeline, orchestra, model_id, role)
        async with request.form(max_files=1, max_fields=4) as form:
            raw = await _upload(form.get("raw_data"), "raw_data", orchestra.settings.max_upload_mb)
        columns = await asyncio.to_thread(_raw_parameters, orchestra, f"{PREFIX}{model_id}")
        series = SeriesFile(
            filename=raw.filename,
            column_id=columns.get("columnId") or "id",
            column_sort=columns.get("columnSort") or "time",
        )
        call = PredictCall(format=SERIES_FORMAT, series=series, max_rows=orchestra.settings.serving_max_rows)
        done, _headers = await serve(request, version, call, raw.data)
        if done.status != 200:
            raise ApiError(done.status, done.error or "the prediction failed")
        result = json.loads(done.body)["result"]
        labels = {str(i): value for i, value in zip(result["ids"], result["predictions"], strict=True)}
        return {"result": labels, "model": version.model, "version": version.version}

    @api.get(
        "/models",
        summary="Every trained time-series pipeline with its CV metrics",
        responses=examples.ok(MODELS),
        dependencies=[Depends(require_viewer)],
    )
    async def models(orchestra: OrchestraDep) -> dict[str, Any]:
        steps = await asyncio.to_thread(
            orchestra.service.list_steps, service="automl", tool="tpot", skip=0, limit=10_000
        )
        return {"result": [model_summary(step) for step in steps if step.name.startswith(PREFIX)]}

    return api


# ----- request parsing ------------------------------------------------------------------------------


async def _optional_text(field: Any) -> str | None:
    if isinstance(field, UploadFile):
        data = await field.read(MAX_PARAMS_BYTES + 1)
        if len(data) > MAX_PARAMS_BYTES:
            raise ApiError(413, f"params is larger than the limit of {MAX_PARAMS_BYTES // 1024} KiB")
        return data.decode("utf-8", "replace")
    if isinstance(field, str) and len(field) > MAX_PARAMS_BYTES:
        raise ApiError(413, f"params is larger than the limit of {MAX_PARAMS_BYTES // 1024} KiB")
    return field if isinstance(field, str) else None


def _train_params(_field: Any, text: str | None) -> TrainParams:
    """The parameter file, YAML or JSON (JSON is YAML); an absent file means every default."""
    try:
        problem = _yaml_problem(text) if text else None
        if problem:
            raise ApiError(422, f"invalid params: {problem}")
        data = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as exc:
        raise ApiError(422, f"params is neither YAML nor JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "params must be a mapping (extract_features, select_features, tpot, pipeline_id)")
    try:
        return TrainParams.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid params: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc


async def _upload(field: Any, name: str, limit_mb: int) -> Upload:
    if not isinstance(field, UploadFile):
        raise ApiError(422, f"the multipart request needs a file field named {name!r}")
    data = await field.read(limit_mb * 2**20 + 1)
    if len(data) > limit_mb * 2**20:
        raise ApiError(413, f"{name} is larger than the limit of {limit_mb} MB")
    return Upload(_safe_filename(field.filename or f"{name}.csv"), data)


def _yaml_problem(text: str) -> str | None:
    """Why a parameter file is refused before it is built into objects: aliases (one line of them can stand
    for billions of values) and nesting deeper than ``MAX_DEPTH``. Reads the parser's events, which -- unlike
    building the document -- never recurse."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            return "YAML aliases (*name) are not allowed; write the values out"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


# ----- id checks (cheap, in the API process: the csv module only) -----------------------------------


def check_ids(raw: Upload, labels: Upload | None, column_id: str) -> None:
    """422 unless every series has exactly one label and every label a series."""
    series = _ts_ids(raw.data) if raw.is_ts else _csv_ids(raw.data, column_id, "raw_data")
    if labels is None:
        if not raw.is_ts:
            raise ApiError(422, "a long CSV needs a 'labels' file (id,label); only .ts files carry their labels")
        return
    labelled = _label_ids(labels.data)
    missing, extra = sorted(series - labelled), sorted(labelled - series)
    if missing or extra:
        raise ApiError(
            422,
            f"the labels do not match the series: {len(missing)} series without a label, "
            f"{len(extra)} labels without a series",
            {"seriesWithoutLabel": missing[:20], "labelsWithoutSeries": extra[:20]},
        )


def _csv_ids(data: bytes, column: str, what: str) -> set[str]:
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace")))
    header = next(reader, None)
    if not header or column not in header:
        raise ApiError(422, f"{what}: no column {column!r} in the header {header[:20] if header else []}")
    index = header.index(column)
    return {row[index] for row in reader if len(row) > index}


def _ts_ids(data: bytes) -> set[str]:
    """A .ts file's series are numbered 0..n-1 in file order (what dataset/timeseries writes)."""
    count, in_data = 0, False
    for line in data.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if in_data:
            count += 1
        elif text.lower().startswith("@data"):
            in_data = True
    return {str(i) for i in range(count)}


def _label_ids(data: bytes) -> set[str]:
    ids = [row.get("id") for row in csv.DictReader(io.StringIO(data.decode("utf-8", "replace")))]
    if not ids or any(value is None for value in ids):
        raise ApiError(422, "labels: the file needs a header with columns 'id' and 'label'")
    if len(set(ids)) != len(ids):
        raise ApiError(422, "labels: duplicate series ids")
    return {str(value) for value in ids}


# ----- steps ----------------------------------------------------------------------------------------


def _store_upload(orchestra: Orchestra, name: str, upload: Upload) -> dict[str, Any]:
    key = f"{step_prefix(name)}/source-{uuid.uuid4().hex[:12]}/{upload.filename}"
    with orchestra.store.open(key, "wb") as target:
        target.write(upload.data)
    return {"kind": "upload", "key": key, "filename": upload.filename, "sizeBytes": len(upload.data)}


def _create_all(orchestra: Orchestra, build: Callable[[list[dict[str, Any]]], list[NewStep]]) -> list[str]:
    """Build the steps (``build`` stores its uploads and appends their sources to the list it gets) and create
    them in one transaction. When a check or the creation fails, the stored uploads go too: only their own
    ``source-*`` folders, as a taken name may belong to a step whose files must stay."""
    sources: list[dict[str, Any]] = []
    try:
        steps = build(sources)
        orchestra.service.create_many(steps)
    except BaseException as exc:
        for source in sources:
            delete_upload(orchestra, str(source["key"]))
        if isinstance(exc, ValidationError):  # a value of the parameter file that a step's body refuses
            raise ApiError(422, "invalid params: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc
        raise
    return [new.name for new in steps]


def _new(
    orchestra: Orchestra, role: str, service: str, tool: str, body: StepBody, parameters: dict[str, Any]
) -> NewStep:
    """One step of an expansion, through the checks a step of its own gets."""
    return checked_step(orchestra.settings, role, service, tool, body, parameters)


def _dataset(orchestra: Orchestra, role: str, tool: str, name: str, parameters: dict[str, Any]) -> NewStep:
    # The parameters are written here, not sent by the user: a bare body carries the name through the checks.
    return _new(orchestra, role, "dataset", tool, StepBody(name=name, description=f"timeseries {name}"), parameters)


def _method_step(
    orchestra: Orchestra,
    role: str,
    service: str,
    tool: str,
    name: str,
    parent: str,
    method: str,
    arguments: dict[str, Any],
    limits: Limits | None = None,
) -> NewStep:
    body = MethodBody(
        name=name,
        parentName=parent,
        method=method,
        methodParameters=arguments,
        description=f"timeseries {name}",
        limits=limits or Limits(),
    )
    return _new(orchestra, role, service, tool, body, body.to_parameters())  # fmt: skip


def _check_free(orchestra: Orchestra, names: list[str]) -> None:
    taken = [name for name in names if orchestra.service.exists(name)]
    if taken:
        raise ApiError(409, f"step {taken[0]!r} already exists: choose another pipeline_id or delete the old steps")


def _create_training(
    orchestra: Orchestra, role: str, model_id: str, params: TrainParams, raw: Upload, labels: Upload | None
) -> list[str]:
    base = f"{PREFIX}{model_id}"
    names = {k: f"{base}-{k}" for k in ("raw", "labels", "features", "selected")}
    _check_free(orchestra, [base, f"{base}_leaderboard", *names.values(), f"{names['raw']}_labels"])
    return _create_all(orchestra, lambda sources: _training_steps(orchestra, role, names, params, raw, labels, sources))


def _training_steps(
    orchestra: Orchestra,
    role: str,
    names: dict[str, str],
    params: TrainParams,
    raw: Upload,
    labels: Upload | None,
    sources: list[dict[str, Any]],
) -> list[NewStep]:
    base = names["raw"].removesuffix("-raw")
    extract = params.extract_features
    fmt = {"columnId": extract.column_id, "columnSort": extract.column_sort}
    raw_source = _store_upload(orchestra, names["raw"], raw)
    sources.append(raw_source)
    steps = [_dataset(orchestra, role, "timeseries", names["raw"], {**fmt, "source": raw_source})]
    if labels is not None:
        source = _store_upload(orchestra, names["labels"], labels)
        sources.append(source)
        csv_format = {"separator": ",", "header": True, "encoding": "utf-8", "source": source}
        steps.append(_dataset(orchestra, role, "csv", names["labels"], csv_format))
        labels_step = names["labels"]
    else:
        labels_step = f"{names['raw']}_labels"
    # dataset/timeseries names the id and time columns "id" and "time" whatever the file called them.
    options = extract.model_dump(exclude={"column_id", "column_sort"})
    steps.append(
        _method_step(
            orchestra,
            role,
            "transform",
            "tsfresh",
            names["features"],
            names["raw"],
            "extract_features",
            options,
            Limits(cpus=SEARCH_CPUS),
        )
    )
    # The selection step also joins the labels to the features; select_features: false keeps every feature.
    selection = {"y": f"${labels_step}", "keep_all": not params.select_features}
    steps.append(
        _method_step(
            orchestra,
            role,
            "transform",
            "tsfresh",
            names["selected"],
            names["features"],
            "select_features",
            selection,
        )
    )
    steps.append(_automl_step(orchestra, role, base, names["selected"], params.tpot))
    return steps  # fmt: skip


def _automl_step(orchestra: Orchestra, role: str, name: str, parent: str, tpot: TpotParams) -> NewStep:
    options: dict[str, Any] = {} if tpot.baselines is None else {"baselines": tpot.baselines}
    # Beyond the budget's own reserve: TPOT's baselines by CV and the final fit.
    timeout = min(orchestra.settings.max_step_timeout_s, tpot.timeBudget * 1.5 + 120)
    body = AutoMLBody(
        name=name, parentName=parent, target=LABEL, timeBudget=tpot.timeBudget, seed=tpot.seed, cv=tpot.cv,
        scoring=tpot.scoring, generations=tpot.generations, populationSize=tpot.populationSize,
        excludeColumns=["id"], options=options, description=f"timeseries {name}",
        limits=Limits(timeoutS=timeout, cpus=SEARCH_CPUS),
    )  # fmt: skip
    return _new(orchestra, role, "automl", "tpot", body, body.to_parameters())


def _model_step(orchestra: Orchestra, model_id: str) -> Step:
    name = f"{PREFIX}{model_id}"
    if not orchestra.service.exists(name):
        raise ApiError(404, f"no trained pipeline {model_id!r}; see GET /timeseries/models")
    step: Step = orchestra.service.get(name)
    if step.status != "finished":
        raise ApiError(409, f"pipeline {model_id!r} is {step.status}, not finished")
    return step


def _raw_parameters(orchestra: Orchestra, pipeline: str) -> dict[str, Any]:
    """The parameters of the pipeline's ingest step (its id and time columns), empty when it is gone."""
    raw = f"{pipeline}-raw"
    return dict(orchestra.service.get(raw).parameters) if orchestra.service.exists(raw) else {}


def register_pipeline(orchestra: Orchestra, step: Step, role: str) -> dict[str, Any]:
    """A new version of the model named like the pipeline's step (``ts-{modelId}``), frozen from its run."""
    registry = RegistryService(orchestra.sessions, orchestra.store, orchestra.settings.environment_pythons)
    description = f"time-series pipeline {step.name[len(PREFIX) :]!r}: tsfresh features + {step.tool}"
    return registry.register(Registration(model=step.name, step=step.name, role=role, description=description))


def served_pipeline(orchestra: Orchestra, model_id: str, role: str) -> ServedVersion:
    """The newest ready version of pipeline ``model_id``: registered when it finished training; a pipeline
    trained before the registry existed is registered on its first prediction."""
    name = f"{PREFIX}{model_id}"
    try:
        return served_version(orchestra.sessions, name)
    except NotFound:
        register_pipeline(orchestra, _model_step(orchestra, model_id), role)
        return served_version(orchestra.sessions, name)


# ----- waiting and reports --------------------------------------------------------------------------


async def wait_settled(orchestra: Orchestra, names: list[str], timeout: float) -> list[Step]:
    """Wait until the last step settles, one fails, or ``timeout`` passes (re-reading at least every second)."""
    deadline = time.monotonic() + timeout
    with orchestra.hub.subscription(names[-1]) as changed:
        while True:
            steps: list[Step] = await asyncio.to_thread(lambda: [orchestra.service.get(n) for n in names])
            if steps[-1].status in SETTLED or any(s.status in FAILED for s in steps):
                return steps
            if time.monotonic() >= deadline:
                return steps
            await wait_for(changed, 1.0)


def _raise_if_failed(steps: list[Step]) -> None:
    for step in steps:
        if step.status in FAILED:
            reason = (step.error or {}).get("reason") if isinstance(step.error, dict) else step.error
            raise ApiError(422, f"step {step.name!r} {step.status}: {reason}", {"step": step.name, "error": step.error})


def training_report(
    orchestra: Orchestra, model: Step, model_id: str, seconds: float, steps: list[Step]
) -> dict[str, Any]:
    _raise_if_failed(steps)
    report = {**model_summary(model), "trainTime": round(seconds, 2), "steps": [s.name for s in steps]}
    if model.status != "finished":
        report["timedOut"] = True
    return report


def model_summary(step: Step) -> dict[str, Any]:
    meta = dict(step.meta or {})
    cv = meta.get("cvMetrics") or {}
    return {
        "modelId": step.name[len(PREFIX) :],
        "status": step.status,
        "trainShape": meta.get("trainShape"),
        "mean_cv_accuracy": cv.get("accuracy"),
        "mean_cv_roc_auc": cv.get("roc_auc"),
        "modelType": meta.get("pipeline"),
        "bestLearner": meta.get("bestLearner"),
        "metric": meta.get("metric"),
        "cvScore": meta.get("bestScore"),
        "createdAt": step_document(step)["createdAt"],
        "step": step.name,
    }
