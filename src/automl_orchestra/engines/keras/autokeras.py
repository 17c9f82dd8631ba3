"""The ``autokeras`` tool: AutoKeras 3 (Keras 3, torch backend) through the Learning Orchestra services,
and the declarative ``automl`` service.

What this adds to calling AutoKeras directly is a search that cannot take the machine down:

- every trial runs in a forked child with its own time limit, stopped before the step's memory limit
  (``trial_process``); a stopped or crashed trial is recorded as failed with its reason and the search goes
  on with the next one (KerasTuner's oracle sees an ordinary failed trial);
- the search ends at the step's time budget with the best trial so far;
- ``automl/autokeras`` searches a space that suits the input (a plain CNN for images, no ImageNet-size
  upscaling and no pretrained weights, so nothing to download), and the greedy tuner starts from the
  classic small-image CNN (``SMALL_IMAGE_START``), trained in batches of 64 unless ``batchSize`` says
  otherwise (``IMAGE_BATCH_SIZE``).

After the search AutoKeras 3.0 re-trains the best architecture on all data (``final_fit``) and saves that
model, but its own ``predict``/``evaluate``/``export_model`` never use it: they load the best trial's
checkpoint (``AutoTuner.get_best_model``). ``train/autokeras`` keeps exactly that model and skips the refit,
so its results equal AutoKeras' own and the search costs one full training less. ``automl/autokeras``
(``refit``, default true) does the refit when it fits in the budget -- the best trial's architecture on
the training and validation rows, for as many epochs as the trial ran, under the trial limits -- and uses it.

The model step stores a recipe (``spec.json``); a trained step stores the best model in Keras' native
format (``model.keras``), AutoKeras' preprocessing pipeline (``pipeline.json``) and the trial table
(``trials.json``, also the ``{name}_leaderboard`` dataset). Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import SUMMARY_FILE, OutputRef
from automl_orchestra.contracts.parameters import ExploreToolBody, MethodBody, ModelBody
from automl_orchestra.engines.core.automl import AutoMLRequest, bounded_budget
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.calls import MethodEngine, call_on_parent, import_allowed, method_kwargs
from automl_orchestra.engines.core.columns import select_features
from automl_orchestra.engines.core.model import ModelSpec
from automl_orchestra.engines.core.serving import Answer, NotServable, ServedModel, numeric_matrix
from automl_orchestra.engines.core.user_code import run_builder
from automl_orchestra.engines.core.values import load_value, readable_json, save_value, write_json
from automl_orchestra.engines.keras import trial_process
from automl_orchestra.engines.keras.keras import (
    MODEL_FILE,
    architecture_text,
    as_array,
    device,
    export_onnx,
    import_keras,
    load_keras_model,
    model_facts,
    save_keras_model,
)
from automl_orchestra.engines.keras.parameters import AutoKerasBody
from automl_orchestra.engines.keras.serving import input_shape

SPEC_FILE = "spec.json"
PIPELINE_FILE = "pipeline.json"
TRIALS_FILE = "trials.json"
# The step chooses AutoKeras' project directory (inside its work directory); a request cannot.
RESERVED_PARAMETERS = frozenset({"directory", "project_name"})
# Orchestra's own model parameters (camelCase, so they never clash with AutoKeras' snake_case ones).
TRIAL_TIMEOUT = "trialTimeout"
# The trial table's columns shown on the step while a search runs (no histories or hyperparameters).
SUMMARY_KEYS = ("trial", "status", "reason", "architecture", "parameterCount", "epochs", "seconds", "peakMemoryMb")
# Below this many seconds left in the budget, no new trial is started.
MIN_TRIAL_S = 5.0
# Loading the best model and saving it after the search.
FINISH_S = 10.0
# Added to a refit's estimated time (the child's start, the pipeline's fit on every row, saving).
REFIT_MARGIN_S = 15.0
# Batches for image searches unless the request gives ``batchSize``: Keras on a CPU pays a fixed cost per
# batch (about 50 ms measured with AutoKeras' default of 32), so small batches make every epoch slow; with
# 64 the start CNN reaches its 0.984 in 12 epochs.
IMAGE_BATCH_SIZE = 64
AUTOKERAS_BATCH_SIZE = 32  # AutoKeras' own default for fit, kept for tables
# A trial stopped at its time limit ends a little after it (the child stopped, its record written): kept
# beside a refit's reserve, or the refit found its estimate a second short of the time left and was skipped.
TRIAL_END_S = 5.0
FIT_KEYS_REFUSED = frozenset({"callbacks"})  # objects: not expressible in JSON, and a code path into the worker
# Where the greedy search starts on small images: two convolution blocks of two layers (32 then 64 filters),
# each pooled, AutoKeras' dropouts -- the classic small-image CNN. Measured on MNIST (8,000 training images,
# 2 CPUs, batches of 64): 0.984 test accuracy after 12 epochs in 124 s. AutoKeras' own first image trial (one
# block of two 32/64 layers at full resolution) costs about twice as much per epoch for less accuracy (its
# 12 epochs took 190-257 s with batches of 32, leaving the 600 s budget one or two trials); one layer per
# block plateaued at 0.974.
SMALL_IMAGE_START = {
    "image_block_1/conv_block_1/kernel_size": 3,
    "image_block_1/conv_block_1/num_blocks": 2,
    "image_block_1/conv_block_1/num_layers": 2,
    "image_block_1/conv_block_1/max_pooling": True,
    "image_block_1/conv_block_1/separable": False,
    "image_block_1/conv_block_1/dropout": 0.25,
    "image_block_1/conv_block_1/filters_0_0": 32,
    "image_block_1/conv_block_1/filters_0_1": 32,
    "image_block_1/conv_block_1/filters_1_0": 64,
    "image_block_1/conv_block_1/filters_1_1": 64,
    "classification_head_1/spatial_reduction_1/reduction_type": "flatten",
    "classification_head_1/dropout": 0.5,
    "optimizer": "adam",
    "learning_rate": 1e-3,
}


def import_autokeras(cpus: int | None = None) -> Any:
    import_keras(cpus)
    import autokeras

    return autokeras


# ----- what the steps store ------------------------------------------------------------------------


@dataclass(repr=False)
class AutoKerasModelSpec(ModelSpec):
    """What ``model/autokeras`` stores: the AutoKeras class and its arguments (``ModelSpec``) and the time
    one trial may run; the train step builds and searches it. Stored as JSON (``spec.json``), not pickled."""

    trial_timeout: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "modulePath": self.module_path,
            "class": self.class_name,
            "classParameters": self.kwargs,
            TRIAL_TIMEOUT: self.trial_timeout,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> AutoKerasModelSpec:
        return cls(document["modulePath"], document["class"], document["classParameters"], document[TRIAL_TIMEOUT])

    def build(self, directory: Path) -> Any:
        """The AutoKeras object, its project in ``directory`` (always a fresh search)."""
        autokeras = import_autokeras()
        factory = import_allowed(self.module_path, self.class_name, catalog.TOOLS["autokeras"].allowed_modules)
        kwargs = {key: value for key, value in self.kwargs.items() if key != "overwrite"}
        if self.class_name == "AutoModel":
            kwargs = graph_nodes(autokeras, kwargs)
        try:
            return factory(**kwargs, directory=str(directory), project_name="search", overwrite=True)
        except (TypeError, ValueError) as exc:
            raise StepError(f"{self.module_path}.{self.class_name}(...) refused its parameters: {exc}") from None

    def __repr__(self) -> str:
        return f"AutoKerasModelSpec({self.qualified_name}, {self.kwargs})"


def graph_nodes(autokeras: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """``AutoModel`` inputs and outputs from JSON: ``inputs`` (e.g. ``"ImageInput"``), ``outputs`` (e.g.
    ``"ClassificationHead"``) and optional ``blocks`` chained between them; each a class name of
    ``autokeras`` or ``{"class": name, "parameters": {...}}``."""
    for key in ("inputs", "outputs"):
        if key not in parameters:
            raise StepError(f"AutoModel needs classParameters {key!r}, e.g. 'ImageInput' / 'ClassificationHead'")
    node = _node(autokeras, parameters["inputs"], "inputs")
    inputs = node
    for index, block in enumerate(parameters.get("blocks") or []):
        node = _node(autokeras, block, f"blocks[{index}]")(node)
    head = _node(autokeras, parameters["outputs"], "outputs")
    outputs = head(node) if parameters.get("blocks") else head
    built = {"inputs": inputs, "outputs": outputs}
    return {**{k: v for k, v in parameters.items() if k != "blocks"}, **built}


def _node(autokeras: Any, spec: Any, where: str) -> Any:
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec.get("class"), spec.get("parameters") or {})
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise StepError(f"{where} must be an AutoKeras class name or {{'class': name, 'parameters': {{...}}}}")
    factory = import_allowed("autokeras", name, ("autokeras",))
    return factory(**kwargs)


class AutoKerasModel:
    """A searched model: the best Keras model, AutoKeras' data pipeline around it, and the trial table.

    ``predict``, ``evaluate`` and ``export_model`` behave as AutoKeras' own ``AutoModel`` methods.
    """

    def __init__(self, model: Any, pipeline: Any, trials: list[dict[str, Any]], info: dict[str, Any]) -> None:
        self.model = model
        self.pipeline = pipeline
        self.trials = trials
        self.info = info

    def predict(self, x: Any, batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        data = self.pipeline.transform_x(self._inputs(x))
        kwargs.setdefault("verbose", 0)
        predicted = self.model.predict(data, batch_size=batch_size, **kwargs)
        result = np.asarray(self.pipeline.postprocess(predicted))
        result = result.reshape(-1) if result.ndim == 2 and result.shape[1] == 1 else result
        return numeric_labels(result)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 32, **kwargs: Any) -> dict[str, float]:
        data, target = self.pipeline.transform((self._inputs(x), as_array(y, "y")))
        kwargs.setdefault("verbose", 0)
        values = self.model.evaluate(data, target, batch_size=batch_size, return_dict=True, **kwargs)
        return {str(name): float(value) for name, value in values.items()}

    def export_model(self) -> Any:
        return self.model

    def _inputs(self, x: Any) -> Any:
        """A table given to a model searched on a table: its feature columns (as images when it was)."""
        features = self.info.get("features")
        if isinstance(x, pd.DataFrame) and features:
            missing = [name for name in features if name not in x.columns]
            if missing:
                raise StepError(f"the table lacks {len(missing)} of the model's feature columns, e.g. {missing[:5]}")
            x = x[features].to_numpy(dtype=np.float32)
            shape = self.info.get("imageShape")
            return x.reshape(len(x), *shape) if shape else x
        return as_array(x, "x")

    def summary(self) -> dict[str, Any]:
        """The trial table and the best architecture (``explore/autokeras``)."""
        return {**self.info, "trials": self.trials, "architecture": architecture_text(self.model)}

    def __repr__(self) -> str:
        return f"AutoKerasModel(best trial {self.info.get('bestTrial')}, {len(self.trials)} trials)"


class ServedAutoKerasModel(ServedModel):
    """A searched model in a serving worker: its labels through its preprocessing pipeline, as AutoKeras'
    ``predict``. Searched on a table, it takes that table's feature columns (the version's signature); on
    arrays, the flat values of its input tensor, like a Keras model (``engines/keras/serving.py``). For a
    classification head the probabilities are the head's outputs (a sigmoid's become two columns), with the
    pipeline's labels as classes."""

    def __init__(self, model: AutoKerasModel) -> None:
        from autokeras.preprocessors.encoders import Encoder, LabelEncoder

        super().__init__(model)
        self.model: AutoKerasModel = model
        outputs = list(model.pipeline.outputs)
        if len(outputs) != 1:
            raise NotServable(f"the AutoKeras model has {len(outputs)} heads; serving answers one")
        encoder = next((step for step in outputs[0] if isinstance(step, Encoder)), None)
        self.task = "classification" if encoder is not None else "regression"
        self.labels = numeric_labels(np.asarray(encoder.labels)).tolist() if encoder is not None else None
        self.sigmoid = isinstance(encoder, LabelEncoder)
        self.features = model.info.get("features") or None
        self.shape = None if self.features else input_shape(model.model)

    @property
    def classifier(self) -> bool:
        return self.task == "classification"

    def columns(self) -> list[str] | None:
        return [str(name) for name in self.features] if self.features else None

    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        model = self.model
        if self.shape is not None:
            x: Any = numeric_matrix(rows, math.prod(self.shape), self.shape).reshape(len(rows), *self.shape)
        else:
            x = model._inputs(rows)
        outputs = np.asarray(model.model.predict(model.pipeline.transform_x(x), verbose=0))
        labels = np.asarray(model.pipeline.postprocess(outputs))
        labels = numeric_labels(labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels)
        if not probabilities or self.labels is None:
            return Answer(labels)
        scores = outputs.astype(float)
        if self.sigmoid:
            scores = np.column_stack([1.0 - scores[:, 0], scores[:, 0]])
        return Answer(labels, scores, self.labels)


# ----- the engine ------------------------------------------------------------------------------------


class AutoKerasEngine(MethodEngine):
    name = "autokeras"
    allowed_modules = catalog.TOOLS["autokeras"].allowed_modules

    def model(self, ctx: StepContext) -> StepResult:
        import_autokeras(ctx.cpus)
        request = ctx.request_as(ModelBody)
        module_path, class_name = request.modulePath, request.class_
        parameters = ctx.resolve(dict(request.classParameters))
        reserved = sorted(RESERVED_PARAMETERS & set(parameters))
        if reserved:
            raise StepError(f"classParameters {reserved} are set by the step (its project lives in its work dir)")
        timeout = parameters.pop(TRIAL_TIMEOUT, None)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise StepError(f"classParameters.{TRIAL_TIMEOUT} must be a positive number of seconds")
        spec = AutoKerasModelSpec(module_path, class_name, readable_json(parameters), timeout)
        auto = spec.build(ctx.work_dir / "autokeras")  # validates the class and its parameters now
        metadata = {"class": f"{module_path}.{class_name}", "maxTrials": int(auto.max_trials), **spec.to_json()}
        return StepResult(value=spec, metadata=metadata)

    def train(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(MethodBody)
        spec = ctx.load_step(request.parentName)
        if not isinstance(spec, AutoKerasModelSpec) or (request.method or "fit") != "fit":
            return self._fit(ctx)  # a method of a searched model (or another object): plain reflection
        kwargs = method_kwargs(ctx)
        refused = sorted(FIT_KEYS_REFUSED & set(kwargs))
        if refused:
            raise StepError(f"methodParameters {refused} cannot be given to a search through the API")
        for key in ("x", "y", "validation_data"):
            if key in kwargs:
                kwargs[key] = as_array(kwargs[key], key)
        # A fit of a spec has no timeBudget of its own: the search gets what the step's timeout leaves it.
        deadline = time.monotonic() + bounded_budget(ctx.timeout_s, ctx.timeout_s) - FINISH_S
        return search(ctx, spec, kwargs, deadline)

    def tune(self, ctx: StepContext) -> StepResult:
        """AutoKeras' hyperparameter tuning is its architecture search: ``tune/autokeras`` is ``train``."""
        return self.train(ctx)

    def builder(self, ctx: StepContext) -> StepResult:
        """A whole AutoKeras pipeline script (the seed's ``builder/autokeras``), with ``autokeras`` and
        ``keras`` imported for the step's CPUs; the files it writes become the step's artifacts."""
        autokeras = import_autokeras(ctx.cpus)
        import keras

        return run_builder(ctx, {"autokeras": autokeras, "ak": autokeras, "keras": keras})

    def predict(self, ctx: StepContext) -> StepResult:
        import_autokeras(ctx.cpus)  # torch on the step's CPUs before the model is loaded and run
        call = call_on_parent(ctx, "predict")
        return StepResult(value=np.asarray(call.result), metadata={"method": call.method})

    def evaluate(self, ctx: StepContext) -> StepResult:
        import_autokeras(ctx.cpus)
        call = call_on_parent(ctx, "evaluate")
        scores = call.result if isinstance(call.result, dict) else {}
        return StepResult(value=call.result, metadata={"method": call.method}, metrics=scores)

    def explore(self, ctx: StepContext) -> StepResult:
        """``method`` ``summary``: the trial table and best architecture; ``export``: the best model as
        ``model.keras`` and ``model.onnx`` artifacts of this step."""
        import_autokeras(ctx.cpus)
        request = ctx.request_as(ExploreToolBody)
        # parentName is optional in the explore family (other tools explore a module): here it is needed.
        target = ctx.load_step(request.parentName) if request.parentName else None
        if not isinstance(target, AutoKerasModel):
            raise StepError("explore/autokeras needs a trained AutoKeras step as parentName")
        method = request.method
        if method == "export":
            target.model.save(ctx.output_dir / MODEL_FILE)
            onnx = export_onnx(target.model, ctx.output_dir)
            return StepResult(value={"keras": MODEL_FILE, "onnx": onnx}, metadata={"onnx": onnx})
        if method != "summary":
            raise StepError(f"explore/autokeras methods are 'summary' and 'export', not {method!r}")
        return StepResult(value=readable_json(target.summary()), metadata={"bestTrial": target.info.get("bestTrial")})

    def automl(self, ctx: StepContext) -> StepResult:
        settings = AutoKerasRequest(ctx)
        x, y, kind, features = automl_data(ctx, settings)
        spec = automl_spec(settings, kind, x)
        kwargs: dict[str, Any] = {"x": x, "y": y, "epochs": settings.epochs, "validation_split": settings.validation}
        batch_size = settings.batch_size or (IMAGE_BATCH_SIZE if kind == "image" else AUTOKERAS_BATCH_SIZE)
        kwargs["batch_size"] = batch_size
        deadline = settings.deadline - FINISH_S
        result = search(ctx, spec, kwargs, deadline, refit=settings.refit)
        inputs = {"features": features, "imageShape": settings.image_shape if features else None}
        result.value.info.update(inputs)
        facts = {"task": settings.task, "input": kind, "timeBudget": settings.time_budget, "batchSize": batch_size}
        result.metadata.update({**facts, **inputs})
        return result

    def save(self, value: Any, out_dir: Path) -> OutputRef:
        if isinstance(value, AutoKerasModelSpec):
            write_json(out_dir / SPEC_FILE, value.to_json())
            write_json(out_dir / SUMMARY_FILE, {"kind": "object", "type": "AutoKerasModelSpec", **value.to_json()})
            return OutputRef(kind="object", prefix="", files=[SPEC_FILE, SUMMARY_FILE])
        if isinstance(value, AutoKerasModel):
            value.pipeline.save(str(out_dir / PIPELINE_FILE))
            write_json(out_dir / TRIALS_FILE, value.trials)
            return save_keras_model(value.model, out_dir, {"type": "AutoKerasModel", **value.info})
        return save_value(value, out_dir)

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        if ref.kind != "object":
            return load_value(ref, local_dir)
        if SPEC_FILE in ref.files:
            return AutoKerasModelSpec.from_json(json.loads((local_dir / SPEC_FILE).read_text(encoding="utf-8")))
        if PIPELINE_FILE in ref.files:
            return load_searched(local_dir)
        raise StepError("this output is not an AutoKeras model or model recipe")

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        """A searched model answers as AutoKeras' ``predict`` does (``engines/keras/serving.py``)."""
        value = self.load(ref, local_dir)
        if isinstance(value, AutoKerasModelSpec):
            raise NotServable("this is an AutoKeras model recipe (model/autokeras): register the step that trained it")
        return ServedAutoKerasModel(value) if isinstance(value, AutoKerasModel) else ServedModel(value)


def numeric_labels(labels: np.ndarray) -> np.ndarray:
    """AutoKeras returns class labels as strings ('7'); labels that were numbers come back as numbers."""
    if labels.dtype.kind not in "US":
        return labels
    try:
        numbers = labels.astype(np.float64)
    except ValueError:
        return labels
    return numbers.astype(np.int64) if np.all(numbers == np.round(numbers)) else numbers


def load_searched(local_dir: Path) -> AutoKerasModel:
    autokeras = import_autokeras()
    from autokeras import pipeline as pipeline_module

    model = load_autokeras_model(autokeras, local_dir / MODEL_FILE)
    pipeline = pipeline_module.load_pipeline(str(local_dir / PIPELINE_FILE))
    trials = json.loads((local_dir / TRIALS_FILE).read_text(encoding="utf-8"))
    info = json.loads((local_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    keys = ("bestTrial", "objective", "bestScore", "trialsCompleted", "trialsFailed", "features", "imageShape")
    return AutoKerasModel(model, pipeline, trials, {key: info.get(key) for key in keys})


def load_autokeras_model(autokeras: Any, path: Path) -> Any:
    import keras

    with keras.saving.custom_object_scope(autokeras.CUSTOM_OBJECTS):
        return load_keras_model(path)


# ----- the search ------------------------------------------------------------------------------------


def search(
    ctx: StepContext, spec: AutoKerasModelSpec, fit_kwargs: dict[str, Any], deadline: float, refit: bool = False
) -> StepResult:
    """Run the search (``fit``); with ``refit``, the best architecture is then retrained on the training and
    validation rows when that fits in the time left (:meth:`_Search.final_fit`)."""
    autokeras = import_autokeras()
    trial_process.orchestrating_threads()
    auto = spec.build(ctx.work_dir / "autokeras")
    fit_kwargs.setdefault("verbose", 2)
    run = _Search(ctx, auto, deadline, spec.trial_timeout, refit, float(fit_kwargs.get("validation_split") or 0.0))
    run.install()
    keras = import_keras()
    # This process only orchestrates and forks the trials; on a GPU machine it must not initialise CUDA
    # (a forked child could not use it), so what it builds stays on the CPU and the trials use device().
    with keras.device("cpu"):
        auto.fit(**fit_kwargs)
    model = load_autokeras_model(autokeras, Path(auto.tuner.best_model_path))
    pipeline = auto.tuner.get_best_pipeline()
    board = run.leaderboard()
    completed = board[board["status"] == "completed"]
    best = completed.iloc[0]
    info = {
        "bestTrial": int(best["trial"]),
        "objective": run.objective_name,
        "bestScore": float(best["score"]),
        "trialsCompleted": len(completed),
        "trialsFailed": int((board["status"] != "completed").sum()),
        "bestArchitecture": str(best["architecture"]),
        "bestHyperparameters": json.loads(str(best["hyperparameters"])),
        **model_facts(model),
    }
    if run.stopped:
        info["stopped"] = run.stopped
    if run.refit_info:
        info["refit"] = run.refit_info
    info["searchSeconds"] = round(time.monotonic() - ctx.started, 2)  # from the step's start, as the budget
    metrics = {"bestScore": info["bestScore"], "trialsCompleted": info["trialsCompleted"]}
    metrics.update({f"best_{k}": v for k, v in run.best_epoch_logs(int(best["trial"])).items()})
    trials = json.loads(board.to_json(orient="records"))  # NaN (no score yet) as null
    value = AutoKerasModel(model, pipeline, trials, info)
    return StepResult(value=value, metadata=info, metrics=metrics, derived={"leaderboard": board})


class _Search:
    """Hooks into AutoKeras' tuner: each trial in a limited child, the budget, a refit only when it is used."""

    def __init__(
        self,
        ctx: StepContext,
        auto: Any,
        deadline: float,
        trial_timeout: float | None,
        refit: bool = False,
        validation_split: float = 0.0,
    ) -> None:
        self.ctx = ctx
        self.refit = refit
        self.refit_info: dict[str, Any] = {}
        # A refit trains on the validation rows too: this many times a trial's rows.
        self.refit_rows_factor = 1.0 / (1.0 - validation_split)
        self.auto = auto
        self.tuner = auto.tuner
        self.deadline = deadline
        self.trial_timeout = trial_timeout
        self.records: list[_TrialRecord] = []
        self.objective_name = str(self.tuner.oracle.objective.name)
        self._minimize = str(self.tuner.oracle.objective.direction) == "min"
        self._run_trial = self.tuner.run_trial
        self._final_fit = self.tuner.final_fit
        self.stopped = ""  # why the search ended before its trials or budget were spent

    def install(self) -> None:
        # A failed trial is recorded here, not a reason to end the search (KerasTuner stops after 3).
        self.tuner.oracle.max_consecutive_failed_trials = 1_000_000
        self.tuner.run_trial = self.run_trial
        self.tuner.pre_create_trial = self.check_budget
        self.tuner.final_fit = self.final_fit

    def check_budget(self) -> None:
        left = self.deadline - time.monotonic()
        cancelled = self.ctx.stop_requested()
        allowance = self._trial_allowance(left)
        if allowance >= MIN_TRIAL_S and not cancelled and not self._keep_for_refit(allowance, left):
            return
        oracle = self.tuner.oracle
        if not any(record.status == "completed" for record in self.records):
            why = "cancelled by request" if cancelled else "the time budget ran out"
            raise StepError(f"{why} before any trial finished: {self._reasons()}")
        if cancelled:
            self.stopped = "cancelled by request: the search ended early with the best model so far"
        print(self.stopped or f"time budget: {left:.0f} s left, no new trial", flush=True)
        oracle.max_trials = len(oracle.trials)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> list[Any]:
        import keras
        from keras_tuner import errors

        number = len(self.records) + 1
        left = self.deadline - time.monotonic()
        allowance = self._trial_allowance(left)
        limit = min(self.trial_timeout or math.inf, allowance)
        record = _TrialRecord(number, str(trial.trial_id), dict(trial.hyperparameters.values), self)
        self.records.append(record)
        limits = trial_process.TrialLimits(limit, float(self.ctx.job.limits.memory_mb))
        trial_dir = self.ctx.work_dir / "trials" / f"trial-{number}"
        self.ctx.progress(self._fraction(number - 1), f"trial {number}: {record.architecture}", self.trial_table())
        print(f"trial {number}: {record.architecture}, limit {limit:.0f} s", flush=True)

        def work(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), _reporter(emit)]
            with keras.device(device()):
                histories = self._run_trial(trial, *args, **kwargs)
            return {"histories": [readable_json(history.history) for history in histories]}

        outcome = trial_process.run_trial(
            work, limits, trial_dir, self.ctx.cpus, record.on_event, should_stop=self.ctx.stop_requested
        )
        if not outcome.ok and limit < (self.trial_timeout or math.inf) and outcome.reason.startswith("time limit"):
            kept = f"; {left - allowance:.0f} s are kept for a refit" if allowance < left else ""
            outcome.reason = f"stopped: the step's time budget ran out ({limit:.0f} s were left for this trial{kept})"
        record.finish(outcome)
        self.ctx.progress(self._fraction(number), f"trial {number}: {record.status}", self.trial_table())
        print(f"trial {number}: {record.status} {record.reason}".rstrip(), flush=True)
        if not outcome.ok:
            raise errors.FailedTrialError(outcome.reason)
        histories = []
        for logs in outcome.result["histories"]:
            history = keras.callbacks.History()
            history.history = logs
            history.epoch = list(range(len(next(iter(logs.values()), []))))
            histories.append(history)
        return histories

    def final_fit(self, **kwargs: Any) -> tuple[Any, Any, None]:
        """AutoKeras retrains the best architecture on the training and validation rows here, then predicts
        with the best trial's model anyway (module docstring). With ``refit`` (``automl/autokeras``) the
        retrained model is used: trained like a trial, under the same limits, for as many epochs as the best
        trial ran, when that fits in the time left. Otherwise the refit is skipped."""
        if self.refit:
            refitted = self._refit(kwargs)
            if refitted is not None:
                return refitted
        return self.best_without_refit()

    def _best_record(self) -> _TrialRecord | None:
        best = self.tuner.oracle.get_best_trials(1)
        return next((r for r in self.records if best and r.trial_id == str(best[0].trial_id)), None)

    def _refit_estimate(self, record: _TrialRecord) -> float:
        """Seconds to retrain ``record``'s architecture on the training and validation rows."""
        return record.seconds * self.refit_rows_factor + REFIT_MARGIN_S

    def _trial_allowance(self, left: float) -> float:
        """The longest a new trial may run with ``left`` seconds to go. With a refit to come, it leaves time to
        refit the best trial so far, and to refit the new trial itself should it become the best."""
        if not self.refit:
            return left
        best = self._best_record()
        reserve = self._refit_estimate(best) if best is not None and best.status == "completed" else 0.0
        left -= TRIAL_END_S
        return min(left - reserve, (left - REFIT_MARGIN_S) / (1.0 + self.refit_rows_factor))

    def _keep_for_refit(self, allowance: float, left: float) -> bool:
        """With a refit to come: true when a trial of the usual length no longer fits in ``allowance``, what
        the refit leaves of ``left`` (a trial cut off by the budget is time lost)."""
        completed = [r for r in self.records if r.status == "completed"]
        if not self.refit or not completed:
            return False
        typical = sum(r.seconds for r in completed) / len(completed)
        if allowance >= typical:
            return False
        print(f"{left:.0f} s left: a trial (~{typical:.0f} s) no longer fits beside the refit", flush=True)
        return True

    def _refit(self, kwargs: dict[str, Any]) -> tuple[Any, Any, None] | None:
        import keras
        from autokeras import pipeline as pipeline_module

        record = self._best_record()
        if record is None or not record.epochs or self.ctx.stop_requested():
            self.refit_info = {"status": "skipped", "reason": "no completed trial to refit, or cancelled"}
            return None
        # As many epochs as the trial ran: what AutoKeras' own refit does when ``epochs`` is given (the best
        # validation epoch is a noisy pick on a small validation split: 6 of 12 gave 0.9725 against 0.9775).
        epochs = len(record.epochs)
        inputs = kwargs["x"]
        rows = len(inputs[0] if isinstance(inputs, list | tuple) else inputs)  # training and validation rows
        estimate = self._refit_estimate(record)
        left = self.deadline - time.monotonic()
        self.refit_info = {"trial": record.number, "epochs": epochs, "rows": rows, "estimatedSeconds": round(estimate)}
        if estimate > left:
            self.refit_info.update(status="skipped", reason=f"needs about {estimate:.0f} s, {left:.0f} s are left")
            print(f"refit skipped: {self.refit_info['reason']}", flush=True)
            return None
        self.tuner.hypermodel.set_fit_args(0, epochs=epochs)
        refit_dir = self.ctx.work_dir / "trials" / "refit"
        self.ctx.progress(0.95, f"refit of trial {record.number} on {rows} rows, {epochs} epochs")

        def work(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            arguments = {**kwargs, "epochs": epochs, "callbacks": [*kwargs.get("callbacks", []), _reporter(emit)]}
            with keras.device(device()):
                pipeline, model, _ = self._final_fit(**arguments)
            model.save(refit_dir / MODEL_FILE)
            pipeline.save(str(refit_dir / PIPELINE_FILE))
            return {}

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "epoch":
                self.ctx.progress(None, f"refit epoch {event.get('epoch')}/{epochs}: loss {event['logs'].get('loss')}")

        limits = trial_process.TrialLimits(left, float(self.ctx.job.limits.memory_mb))
        outcome = trial_process.run_trial(
            work, limits, refit_dir, self.ctx.cpus, on_event, should_stop=self.ctx.stop_requested
        )
        self.refit_info.update(seconds=outcome.seconds, peakMemoryMb=round(outcome.peak_memory_mb, 1))
        if not outcome.ok:
            self.refit_info.update(status="failed", reason=outcome.reason)
            print(f"refit failed, keeping trial {record.number}'s model: {outcome.reason}", flush=True)
            return None
        self.refit_info["status"] = "used"
        model = load_autokeras_model(import_autokeras(), refit_dir / MODEL_FILE)
        return pipeline_module.load_pipeline(str(refit_dir / PIPELINE_FILE)), model, None

    def best_without_refit(self, **_kwargs: Any) -> tuple[Any, Any, None]:
        """The best trial's model and pipeline, as AutoKeras' predict/evaluate use them."""
        from autokeras import pipeline as pipeline_module

        best = self.tuner.oracle.get_best_trials(1)
        if not best:
            raise StepError(f"no trial finished: {self._reasons()}")
        pipeline = pipeline_module.load_pipeline(self.tuner._pipeline_path(best[0].trial_id))
        return pipeline, self.tuner.get_best_model(), None

    def score(self, logs: list[dict[str, float]]) -> float | None:
        values = [epoch[self.objective_name] for epoch in logs if self.objective_name in epoch]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        return min(values) if self._minimize else max(values)

    def best_epoch_logs(self, number: int) -> dict[str, float]:
        record = self.records[number - 1]
        scored = [epoch for epoch in record.epochs if self.objective_name in epoch]
        if not scored:
            return {}
        pick = min if self._minimize else max
        return pick(scored, key=lambda epoch: epoch[self.objective_name])

    def leaderboard(self) -> pd.DataFrame:
        rows = [record.row() for record in self.records]
        board = pd.DataFrame(rows)
        if board.empty or "completed" not in set(board["status"]):
            raise StepError(f"no trial finished: {self._reasons()}")
        ascending = self._minimize
        board = board.sort_values(
            ["completedFirst", "score"], ascending=[True, ascending], na_position="last", kind="stable"
        )
        board = board.drop(columns=["completedFirst"]).reset_index(drop=True)
        board["best"] = False
        board.loc[0, "best"] = True
        return board

    def trial_table(self) -> dict[str, Any]:
        """The trials so far, for the step's document while the search runs (the leaderboard comes at the end)."""
        return {"trials": [record.summary() for record in self.records]}

    def _fraction(self, done: float) -> float:
        return min(1.0, done / max(1, int(self.tuner.oracle.max_trials or 1)))

    def _reasons(self) -> str:
        return "; ".join(f"trial {r.number}: {r.reason}" for r in self.records) or "no trial started"


class _TrialRecord:
    """One trial as the step records it (AMLA-style instrumentation)."""

    def __init__(self, number: int, trial_id: str, hyperparameters: dict[str, Any], search: _Search) -> None:
        self.number = number
        self.trial_id = trial_id
        self.hyperparameters = readable_json(hyperparameters)
        self.search = search
        self.architecture = architecture_name(hyperparameters)
        self.status = "running"
        self.reason = ""
        self.parameters: int | None = None
        self.epochs: list[dict[str, float]] = []
        self.seconds = 0.0
        self.peak_memory_mb = 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            self.parameters = int(event["parameters"])
            return
        if event.get("event") == "epoch":
            logs = {str(k): float(v) for k, v in dict(event.get("logs") or {}).items()}
            self.epochs.append(logs)
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")
            )
            epochs = event.get("epochs") or len(self.epochs)
            fraction = self.search._fraction(self.number - 1 + len(self.epochs) / max(1, int(epochs)))
            self.search.ctx.progress(fraction, f"trial {self.number} epoch {len(self.epochs)}/{epochs}: {shown}")

    def finish(self, outcome: trial_process.TrialOutcome) -> None:
        self.status = "completed" if outcome.ok else "failed"
        self.reason = outcome.reason
        self.seconds = outcome.seconds
        self.peak_memory_mb = round(outcome.peak_memory_mb, 1)

    def summary(self) -> dict[str, Any]:
        """The leaderboard row's light columns and the last epoch's metrics (the step's live trial table)."""
        row = self.row()
        light = {key: row[key] for key in SUMMARY_KEYS}
        return {**light, "lastEpoch": self.epochs[-1] if self.epochs else None}

    def row(self) -> dict[str, Any]:
        score = self.search.score(self.epochs) if self.status == "completed" else None
        return {
            "trial": self.number,
            "trialId": self.trial_id,
            "status": self.status,
            "reason": self.reason,
            "score": score,
            "objective": self.search.objective_name,
            "architecture": self.architecture,
            "parameterCount": self.parameters,
            "epochs": len(self.epochs),
            "seconds": self.seconds,
            "peakMemoryMb": self.peak_memory_mb,
            "hyperparameters": json.dumps(self.hyperparameters, sort_keys=True),
            "history": json.dumps(self.epochs),
            "completedFirst": 0 if self.status == "completed" else 1,
        }


def architecture_name(hyperparameters: dict[str, Any]) -> str:
    """A short name: the block types chosen (``vanilla``, ``resnet resnet50``...), or for a search space that
    fixes the block, its shape (``cnn 1x2``: conv blocks x layers; ``mlp 2``: dense layers)."""
    parts = [str(v) for k, v in hyperparameters.items() if k.endswith("/block_type")]
    parts += [str(v) for k, v in hyperparameters.items() if k.endswith("/version")]
    if parts:
        return " ".join(parts)
    conv = {k.rsplit("/", 1)[-1]: v for k, v in hyperparameters.items() if "/conv_block" in k}
    if conv:
        return f"cnn {conv.get('num_blocks', '?')}x{conv.get('num_layers', '?')}"
    dense = {k.rsplit("/", 1)[-1]: v for k, v in hyperparameters.items() if "/dense_block" in k}
    if dense:
        return f"mlp {dense.get('num_layers', '?')}"
    return "default"


def _reporter(emit: Callable[[dict[str, Any]], None]) -> Any:
    """A Keras callback that reports a trial's size and each epoch to the parent (runs in the child)."""
    import keras

    class Reporter(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            emit({"event": "start", "parameters": int(self.model.count_params())})

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {key: float(value) for key, value in (logs or {}).items()}
            emit({"event": "epoch", "epoch": epoch + 1, "epochs": self.params.get("epochs"), "logs": values})

    return Reporter()


# ----- automl/autokeras ------------------------------------------------------------------------------


class AutoKerasRequest(AutoMLRequest):
    """The ``automl/autokeras`` request: the shared AutoML fields and AutoKeras' own (``AutoKerasBody``)."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        body = ctx.request_as(AutoKerasBody)
        self.max_trials = body.maxTrials
        self.epochs = body.epochs
        self.image_shape = body.imageShape
        self.input_key = body.inputKey
        self.validation = body.validationSplit
        self.refit = body.refit
        self.batch_size = body.batchSize
        self.trial_timeout = body.trialTimeout


def automl_data(ctx: StepContext, settings: AutoKerasRequest) -> tuple[np.ndarray, np.ndarray, str, list[str] | None]:
    """(inputs, targets, "image" | "structured", the feature columns of a table) from a table or from a
    step holding named arrays."""
    source = ctx.load_step(settings.parent)
    if isinstance(source, dict):
        return (*_arrays_data(source, settings), None)
    if not isinstance(source, pd.DataFrame):
        raise StepError(f"{settings.parent!r} must be a table or a step holding named arrays")
    if settings.target not in source.columns:
        raise StepError(f"target {settings.target!r} is not a column of {settings.parent!r}")
    frame = source[source[settings.target].notna()].reset_index(drop=True)
    decision = select_features(
        frame.drop(columns=[settings.target]),
        auto_exclude=settings.auto_exclude,
        exclude=settings.exclude,
        keep=settings.keep,
    )
    non_numeric = [c for c in decision.used if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise StepError(f"automl/autokeras needs numeric features; {non_numeric[:10]} are not (exclude or encode)")
    x = frame[decision.used].to_numpy(dtype=np.float32)
    y = frame[settings.target].to_numpy()
    if settings.image_shape:
        if int(np.prod(settings.image_shape)) != x.shape[1]:
            raise StepError(f"imageShape {settings.image_shape} does not hold the {x.shape[1]} feature columns")
        return x.reshape(len(x), *settings.image_shape), y, "image", decision.used
    return x, y, "structured", decision.used


def _arrays_data(arrays: dict[str, Any], settings: AutoKerasRequest) -> tuple[np.ndarray, np.ndarray, str]:
    if settings.target not in arrays:
        raise StepError(f"target {settings.target!r} is not one of the arrays of {settings.parent!r}: {sorted(arrays)}")
    key = settings.input_key or ("x" if "x" in arrays else None)
    if key is None or key not in arrays:
        raise StepError(f"give inputKey: the array of inputs among {sorted(arrays)}")
    x, y = np.asarray(arrays[key]), np.asarray(arrays[settings.target])
    if len(x) != len(y):
        raise StepError(f"{key!r} has {len(x)} rows but {settings.target!r} has {len(y)}")
    if settings.image_shape:
        x = x.reshape(len(x), *settings.image_shape)
    return x, y, "image" if x.ndim in (3, 4) else "structured"


def automl_spec(settings: AutoKerasRequest, kind: str, x: np.ndarray) -> AutoKerasModelSpec:
    """The search space for the input: a plain CNN (no upscaling, no pretrained weights) for images,
    AutoKeras' structured-data search for tables."""
    head = "ClassificationHead" if settings.task == "classification" else "RegressionHead"
    common = {"max_trials": settings.max_trials, "seed": settings.seed}
    if kind == "structured":
        name = "StructuredDataClassifier" if settings.task == "classification" else "StructuredDataRegressor"
        return AutoKerasModelSpec("autokeras", name, common, settings.trial_timeout)
    block = {"class": "ImageBlock", "parameters": {"block_type": "vanilla", "normalize": True, "augment": False}}
    parameters = {**common, "inputs": "ImageInput", "blocks": [block], "outputs": head, "tuner": "greedy"}
    if settings.task == "classification":
        parameters["initial_hps"] = [SMALL_IMAGE_START]
    print(f"search space: vanilla CNN on {list(x.shape[1:])} images ({settings.max_trials} trials)", flush=True)
    return AutoKerasModelSpec("autokeras", "AutoModel", parameters, settings.trial_timeout)
