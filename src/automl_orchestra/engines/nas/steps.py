"""The ``nas`` service (AMLA's Generate, Train and Evaluate as atomic steps) and ``automl/nas``, the
scheduler that drives them as child steps.

* ``nas/generate``: a generator plug-in proposes a model spec from the search history (JSON output:
  ``spec``, ``genome``, ``generator``).
* ``nas/train``: trains a spec on ``data`` with its control parameters; constraints on the instrumentation
  are checked first and an over-budget network is rejected untrained (``reject``) or trained and scored
  lower later (``penalize``). Output: a :class:`~automl_orchestra.nas.network.TrainedNetwork`.
* ``nas/evaluate``: test-split metrics plus instrumentation (parameters, multiply-adds, latency per
  sample, peak memory, per-epoch curves), an ONNX export checked against PyTorch with onnxruntime.
* ``automl/nas``: see :mod:`automl_orchestra.engines.nas.driver`.

torch, onnxruntime and Optuna are imported inside the services, so loading this module to read a stored
network costs nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.nas.parameters import NasConstraints, NasEvaluateBody, NasGenerateBody, NasTrainBody
from automl_orchestra.nas.constraints import Constraints
from automl_orchestra.nas.data import DataError, DataSettings, Split
from automl_orchestra.nas.network import TrainedNetwork

if TYPE_CHECKING:
    from automl_orchestra.engines.core.serving import ServedModel
    from automl_orchestra.nas.generators import Generator, Trial
    from automl_orchestra.nas.space import SearchSpace

ONNX_FILE = "model.onnx"
# Proposals redrawn when the spec alone shows a reject-mode constraint broken (AMLA: constraint-based
# generation from the instrumentation); the last one goes to training, which rejects it, if all are over.
MAX_REDRAWS = 50
CURVES_PLOT = "curves.png"


class NasGenerate(Engine):
    name = "generate"

    def nas(self, ctx: StepContext) -> StepResult:
        from automl_orchestra.nas import generators
        from automl_orchestra.nas.space import SearchSpace

        request = ctx.request_as(NasGenerateBody)
        name = request.generator
        try:
            # The library reads the space and the history in their JSON form (the form it stores them in).
            space = SearchSpace.from_json(request.space.model_dump(exclude_none=True))
            history = [generators.Trial.from_json(item) for item in request.history]
            generator = generators.create(name, request.options)
        except (KeyError, TypeError, ValueError) as exc:
            raise StepError(f"nas/generate: {exc}") from exc
        constraints = (request.constraints or NasConstraints()).checker()
        rng = random.Random(request.seed * 100_003 + len(history))  # reproducible per (seed, trial number)
        spec, genome, redraws = _propose(generator, space, history, rng, constraints)
        metadata = {"generator": name, "trial": len(history) + 1, "layers": len(spec["layers"]), "redraws": redraws}
        return StepResult(value={"spec": spec, "genome": genome, "generator": name}, metadata=metadata)


class NasTrain(Engine):
    name = "train"

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        """The trained network as a serving worker calls it (``engines/nas/serving.py``)."""
        from automl_orchestra.engines.nas.serving import ServedNetwork

        return ServedNetwork(self.load(ref, local_dir))

    def nas(self, ctx: StepContext) -> StepResult:
        import torch

        from automl_orchestra.nas import instrument, trainer
        from automl_orchestra.nas.torch_model import build, device

        torch.set_num_threads(ctx.cpus)
        request = ctx.request_as(NasTrainBody)
        spec = _train_spec(ctx, request)
        constraints = request.constraints.checker()
        settings = request.data_settings()
        split = _load_split(ctx, request.data, settings)
        _check_fit(spec, split)
        module = build(spec).to(device())
        measured = {
            **instrument.static(spec, module),
            "latencyMsPerSample": instrument.latency_ms_per_sample(module, split.input_shape, device()),
        }
        network = TrainedNetwork(
            spec, {}, settings.to_json(), split.classes, instrumentation=measured, preprocessing=split.preprocessing
        )
        over = constraints.violations(measured)
        if over and constraints.mode == "reject":
            network.rejected = constraints.describe(over, measured)
            print(f"rejected before training: {network.rejected}", flush=True)
            return StepResult(value=network, metadata=_train_metadata(network), metrics={"rejected": 1})

        def on_epoch(epoch: int, curve: dict[str, float]) -> None:
            message = f"epoch {epoch}: valid accuracy {curve['validAccuracy']:.4f}"
            ctx.progress(epoch / int(spec["control"]["epochs"]), message)

        module, network.curves = trainer.train(spec, split, settings.seed, on_epoch)
        network.weights = trainer.weights_of(module)
        network.instrumentation["trainPeakMemoryMb"] = instrument.peak_memory_mb(device())
        network.instrumentation["trainSeconds"] = network.curves[-1]["seconds"] if network.curves else 0.0
        last = network.curves[-1] if network.curves else {}
        metrics = {"validAccuracy": last.get("validAccuracy"), "trainLoss": last.get("trainLoss"), "rejected": 0}
        return StepResult(value=network, metadata=_train_metadata(network), metrics=metrics)


class NasEvaluate(Engine):
    name = "evaluate"

    def nas(self, ctx: StepContext) -> StepResult:
        import torch

        from automl_orchestra.nas import instrument, trainer
        from automl_orchestra.nas.torch_model import device

        torch.set_num_threads(ctx.cpus)
        request = ctx.request_as(NasEvaluateBody)
        network = ctx.load_step(request.parentName)
        if not isinstance(network, TrainedNetwork):
            raise StepError(f"step {request.parentName!r} is not a nas/train step (it holds {type(network).__name__})")
        constraints = (request.constraints or NasConstraints()).checker()
        measured = dict(network.instrumentation)
        if network.rejected:
            metrics = {"accuracy": None, "score": 0.0, "rejected": 1, **_numbers(measured)}
            value = {**metrics, "reason": network.rejected}
            return StepResult(value=value, metadata={"rejected": network.rejected}, metrics=metrics)
        # The split the network trained on: its stored settings, so the test rows are the same ones.
        split = _load_split(ctx, request.data, DataSettings.from_json(network.data))
        module = trainer.restore(network)
        tested = _test_metrics(ctx, module, split)
        measured["latencyMsPerSample"] = instrument.latency_ms_per_sample(module, split.input_shape, device())
        measured["peakMemoryMb"] = max(instrument.peak_memory_mb(device()), measured.get("trainPeakMemoryMb", 0.0))
        over = constraints.violations(measured) if constraints.limits else {}
        metrics = {**tested, "score": constraints.score(tested["accuracy"], over), "rejected": 0, **_numbers(measured)}
        if over:
            metrics["overBudget"] = constraints.describe(over, measured)
        _plot_curves(network.curves, ctx.output_dir / CURVES_PLOT, ctx)
        value = {**metrics, "curves": network.curves, "onnx": ONNX_FILE, "plot": CURVES_PLOT, "spec": network.spec}
        return StepResult(value=value, metadata={"onnx": ONNX_FILE, "plot": CURVES_PLOT}, metrics=metrics)


class NasSearch(Engine):
    """``automl/nas``: the AMLA scheduler, a driver step whose trials are child steps (see the module)."""

    name = "nas"

    def automl(self, ctx: StepContext) -> StepResult:
        from automl_orchestra.engines.nas.driver import run_search

        return run_search(ctx)


# ----- helpers ----------------------------------------------------------------------------------------


def _propose(
    generator: Generator, space: SearchSpace, history: list[Trial], rng: random.Random, constraints: Constraints
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A valid spec, its genome and how many over-budget proposals were redrawn before it."""
    from automl_orchestra.nas.spec import SpecError, validate

    origin = {"generator": generator.name, "trial": len(history) + 1}
    redraws = 0
    while True:
        genome = generator.propose(space, history, rng)
        try:
            spec = validate({**space.decode(genome), "origin": {**origin, "genome": genome}})
        except SpecError as exc:
            raise StepError(f"generator {generator.name!r} proposed an invalid network: {exc}") from exc
        if redraws == MAX_REDRAWS or not _over_static_limits(spec, constraints):
            return spec, genome, redraws
        redraws += 1


def _over_static_limits(spec: dict[str, Any], constraints: Constraints) -> bool:
    """Whether a reject-mode limit that the spec alone decides (parameters, multiply-adds) is broken."""
    from automl_orchestra.nas.spec import footprint

    if constraints.mode != "reject" or not constraints.limits:
        return False
    counts = footprint(spec)
    return bool(constraints.violations({"parameters": counts.parameters, "multiplyAdds": counts.multiply_adds}))


def _train_spec(ctx: StepContext, request: NasTrainBody) -> dict[str, Any]:
    """The validated spec (a reference resolved, request-level control parameters applied)."""
    from automl_orchestra.nas.spec import SpecError, validate

    control = request.control.model_dump(exclude_none=True)  # only the given ones override the spec's
    try:
        return validate(_with_control(ctx.resolve(request.spec), control))
    except (SpecError, ValueError) as exc:
        raise StepError(str(exc)) from exc


def _check_fit(spec: dict[str, Any], split: Split) -> None:
    shape = tuple(spec["input"]["shape"])
    if split.input_shape not in (shape, (1, *shape)):
        raise StepError(f"the spec's input shape {list(shape)} does not match the data's {list(split.input_shape)}")
    if spec["output"]["classes"] != len(split.classes):
        raise StepError(f"the spec has {spec['output']['classes']} classes, the data {len(split.classes)}")


def _test_metrics(ctx: StepContext, module: Any, split: Split) -> dict[str, Any]:
    """Accuracy and loss on the test split, and how far the ONNX export's logits are from PyTorch's."""
    import numpy as np
    import torch

    from automl_orchestra.nas import trainer

    logits = trainer.predict_logits(module, split.x_test)
    tensor, labels = torch.from_numpy(logits), torch.from_numpy(split.y_test)
    trainer.export_onnx(module, split.input_shape, ctx.output_dir / ONNX_FILE)
    exported = trainer.onnx_logits(ctx.output_dir / ONNX_FILE, split.x_test, ctx.cpus)
    return {
        "accuracy": float((tensor.argmax(1) == labels).float().mean()),
        "loss": float(torch.nn.functional.cross_entropy(tensor, labels)),
        "testRows": len(split.y_test),
        "onnxMaxAbsDiff": float(np.max(np.abs(exported - logits))),
    }


def _with_control(spec: Any, control: dict[str, Any]) -> Any:
    """The spec with request-level control overrides (epochs, batch size...) applied."""
    if not isinstance(spec, dict):
        raise StepError(f"'spec' must be a model spec object or a reference to one, got {type(spec).__name__}")
    return {**spec, "control": {**(spec.get("control") or {}), **control}} if control else spec


def _load_split(ctx: StepContext, data: str, settings: DataSettings) -> Split:
    """The split of ``data`` (a ``"$step"`` reference, required by the request model)."""
    from automl_orchestra.nas.data import load

    try:
        return load(ctx.resolve(data), settings)
    except DataError as exc:
        raise StepError(str(exc)) from exc


def _train_metadata(network: TrainedNetwork) -> dict[str, Any]:
    return {
        "classes": network.classes,
        "epochs": len(network.curves),
        "rejected": network.rejected,
        "instrumentation": _numbers(network.instrumentation),
        "curves": network.curves,
    }


def _numbers(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, int | float)}


def _plot_curves(curves: list[dict[str, float]], path: Any, ctx: StepContext) -> None:
    import os

    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2))
    epochs = [c["epoch"] for c in curves]
    axis.plot(epochs, [c["trainAccuracy"] for c in curves], marker="o", label="train")
    axis.plot(epochs, [c["validAccuracy"] for c in curves], marker="o", label="validation")
    axis.set_xlabel("epoch")
    axis.set_ylabel("accuracy")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
