"""The ``keras`` tool: hand-built Keras 3 models (torch backend) through the Learning Orchestra services.

``model/keras`` builds a model from ``modulePath``/``class`` (``keras``, ``Sequential``) whose
``classParameters`` may hold the seed's ``"#..."`` expressions, e.g.
``{"layers": ["#keras.layers.Input((28, 28))", "#keras.layers.Flatten()", "#keras.layers.Dense(10)"]}``.
Those expressions are Python evaluated in the worker, so the registry marks ``model/keras`` as running code:
only code roles may create it and it runs in a forked child of a pristine worker, like ``function`` steps.
``train|predict|evaluate/keras`` call ``compile``/``fit``, ``predict`` and ``evaluate`` on the stored model.

Models are stored in Keras' native ``.keras`` format (architecture, weights, compile state), never pickled,
and reloaded with Keras' safe mode (no arbitrary code in a loaded file). Keras is imported lazily, after
``KERAS_BACKEND=torch`` is set, and torch is bounded to the step's CPUs.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import SUMMARY_FILE, OutputRef
from automl_orchestra.contracts.parameters import ModelBody
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.calls import (
    MethodCall,
    MethodEngine,
    call_on_parent,
    import_allowed,
    qualified_name,
)
from automl_orchestra.engines.core.serving import ServedModel
from automl_orchestra.engines.core.values import load_value, readable_json, save_value, write_json

MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
CODE_PREFIX = "#"
# Keras' progress bar floods a log file: one line per epoch for fit, none for predict/evaluate; and evaluate
# answers with named metrics. Defaults only: the request's methodParameters win.
QUIET_DEFAULTS: dict[str, dict[str, Any]] = {
    "fit": {"verbose": 2},
    "predict": {"verbose": 0},
    "evaluate": {"verbose": 0, "return_dict": True},
}


def import_keras(cpus: int | None = None) -> Any:
    """Keras on the torch backend (set before the first import), torch bounded to ``cpus`` threads."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    # Keras asks torch for a GPU at import; through NVML that question leaves CUDA uninitialised, so a
    # search process can still fork trials that use the GPU (see autokeras.search).
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    # Keras saves through tempfile, which caches the first TMPDIR it saw: in a warm worker that is an
    # earlier job's scratch directory, deleted since. Re-read this job's.
    tempfile.tempdir = None
    import keras

    if keras.backend.backend() != "torch":
        raise StepError(f"this worker's Keras runs on {keras.backend.backend()!r}; the keras tools need torch")
    if cpus is not None:
        import torch

        torch.set_num_threads(max(1, cpus))
    return keras


def device() -> str:
    """Where training runs: the GPU when torch sees one (unchanged code on GPU machines), else the CPU.

    Asked through NVML (``import_keras`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK``), so asking does not
    initialise CUDA in a process that will fork trials: CUDA does not survive a fork.
    """
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ----- the seed's "#..." expressions -----------------------------------------------------------------


def evaluate_expressions(value: Any, namespace: dict[str, Any]) -> Any:
    """``value`` with every ``"#expression"`` string (nested in lists and dicts too) evaluated."""
    if isinstance(value, str) and value.startswith(CODE_PREFIX):
        expression = value[len(CODE_PREFIX) :].strip()
        try:
            # Code by design (the seed's syntax): only code roles reach here, in a forked child of a clean worker.
            return eval(expression, dict(namespace), {})
        except Exception as exc:  # noqa: BLE001 - the user's expression, reported as such
            raise StepError(f"expression {value!r} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(value, list):
        return [evaluate_expressions(item, namespace) for item in value]
    if isinstance(value, dict):
        return {key: evaluate_expressions(item, namespace) for key, item in value.items()}
    return value


def has_expressions(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(CODE_PREFIX)
    if isinstance(value, list):
        return any(has_expressions(item) for item in value)
    if isinstance(value, dict):
        return any(has_expressions(item) for item in value.values())
    return False


def expression_namespace() -> dict[str, Any]:
    keras = import_keras()
    return {"keras": keras, "layers": keras.layers, "np": np, "numpy": np}


# ----- native format ---------------------------------------------------------------------------------


def save_keras_model(model: Any, out_dir: Path, extra: dict[str, Any] | None = None) -> OutputRef:
    """The model as ``model.keras`` plus a readable summary; ONNX beside it when the export works."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    summary = {"kind": "object", "type": qualified_name(model), "format": "keras", **model_facts(model)}
    write_json(out_dir / SUMMARY_FILE, {**summary, **(extra or {})})
    return OutputRef(kind="object", prefix="", files=sorted(f.name for f in out_dir.iterdir() if f.is_file()))


def load_keras_model(path: Path) -> Any:
    keras = import_keras()
    return keras.saving.load_model(path, safe_mode=True)


def model_facts(model: Any) -> dict[str, Any]:
    return {"parameterCount": int(model.count_params()), "layers": [layer.name for layer in model.layers][:200]}


def architecture_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(str(line)))
    return "\n".join(lines)


def export_onnx(model: Any, out_dir: Path) -> str:
    """``model.onnx`` beside the Keras file; what happened, as text (the reason when it could not be made).

    Keras' own ``export(format="onnx")`` needs ``onnxscript`` under torch (its dynamo exporter), which is
    not installed; torch's TorchScript exporter needs nothing more and agrees with Keras to 1e-7.
    """
    import warnings

    import torch

    if len(model.inputs) != 1:
        return "not exported: ONNX export handles single-input models only"
    shape = [1 if size is None else int(size) for size in model.inputs[0].shape]
    sample = torch.zeros(shape, dtype=torch.float32)
    path = out_dir / ONNX_FILE
    try:
        model(sample)  # a Keras model must have been called once before it can be traced
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (sample,),
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=17,
            )
    except Exception as exc:  # noqa: BLE001 - the Keras file is the model; say why ONNX is missing
        path.unlink(missing_ok=True)
        return f"not exported: {type(exc).__name__}: {str(exc)[:500]}"
    return "exported"


def as_array(value: Any, name: str) -> Any:
    """Inputs as numpy (a table becomes its values), since Keras and AutoKeras take arrays."""
    if isinstance(value, dict):
        return {key: as_array(item, f"{name}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple) and value and not isinstance(value[0], int | float | str):
        return [as_array(item, name) for item in value]
    to_numpy = getattr(value, "to_numpy", None)
    if callable(to_numpy):
        value = to_numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise StepError(f"{name} holds non-numeric values; Keras needs numbers")
    return array


class KerasEngine(MethodEngine):
    name = "keras"
    allowed_modules = catalog.TOOLS["keras"].allowed_modules

    def model(self, ctx: StepContext) -> StepResult:
        keras = import_keras(ctx.cpus)
        request = ctx.request_as(ModelBody)
        module_path, class_name = request.modulePath, request.class_
        factory = import_allowed(module_path, class_name, self.allowed_modules)
        raw = request.classParameters
        kwargs = evaluate_expressions(ctx.resolve(raw), expression_namespace())
        try:
            model = factory(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a constructor error is the user's to fix
            raise StepError(f"{module_path}.{class_name}(...) failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(model, keras.Model):
            raise StepError(f"{module_path}.{class_name} made a {type(model).__name__}, not a keras.Model")
        metadata = {"class": f"{module_path}.{class_name}", "expressions": has_expressions(raw)}
        if model.built:
            metadata.update(model_facts(model))
        return StepResult(value=model, metadata=metadata)

    def _fit(self, ctx: StepContext) -> StepResult:
        import_keras(ctx.cpus)
        call = _quiet_call(ctx, "fit")
        metadata: dict[str, Any] = {"class": qualified_name(call.target), "method": call.method}
        metrics: dict[str, Any] = {}
        history = getattr(call.result, "history", None)
        if isinstance(history, dict):
            metadata["history"] = readable_json(history)
            metrics = {key: float(values[-1]) for key, values in history.items() if values}
        if call.target.built:
            metadata.update(model_facts(call.target))
        return StepResult(value=call.target, metadata=metadata, metrics=metrics)

    def predict(self, ctx: StepContext) -> StepResult:
        import_keras(ctx.cpus)
        call = _quiet_call(ctx, "predict")
        return StepResult(value=np.asarray(call.result), metadata={"method": call.method})

    def evaluate(self, ctx: StepContext) -> StepResult:
        import_keras(ctx.cpus)
        call = _quiet_call(ctx, "evaluate")
        scores = {str(k): float(v) for k, v in dict(call.result).items()} if isinstance(call.result, dict) else {}
        return StepResult(value=scores or call.result, metadata={"method": call.method}, metrics=scores)

    def save(self, value: Any, out_dir: Path) -> OutputRef:
        keras = sys.modules.get("keras")  # a value of this engine that is a model means Keras is loaded
        if keras is not None and isinstance(value, keras.Model):
            return save_keras_model(value, out_dir)
        return save_value(value, out_dir)

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        if ref.kind == "object" and MODEL_FILE in ref.files:
            return load_keras_model(local_dir / MODEL_FILE)
        return load_value(ref, local_dir)

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        """A Keras model takes rows as the flat values of its input tensor (``engines/keras/serving.py``)."""
        from automl_orchestra.engines.keras.serving import ServedKerasModel

        value = self.load(ref, local_dir)
        keras = sys.modules.get("keras")
        return ServedKerasModel(value) if keras is not None and isinstance(value, keras.Model) else ServedModel(value)


def _quiet_call(ctx: StepContext, default_method: str) -> MethodCall:
    """``call_on_parent`` with Keras' quiet defaults (``QUIET_DEFAULTS``) for arguments the user left out."""
    return call_on_parent(ctx, default_method, QUIET_DEFAULTS)
