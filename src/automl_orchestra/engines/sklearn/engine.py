"""The ``scikitlearn`` tool: estimators, transformers, searches and plots from scikit-learn, LightGBM and
XGBoost (their scikit-learn APIs), with the Learning Orchestra ``model``/``train``/... services."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.parameters import ExploreToolBody
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.calls import (
    MethodEngine,
    call_method,
    call_on_parent,
    import_allowed,
    method_kwargs,
    qualified_name,
    shape_output,
)

if TYPE_CHECKING:
    from automl_orchestra.engines.core.serving import ServedModel

PLOT_FILE = "plot.png"


class ScikitLearnEngine(MethodEngine):
    name = "scikitlearn"
    allowed_modules = catalog.TOOLS["scikitlearn"].allowed_modules

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        from automl_orchestra.engines.sklearn.serving import served

        return served(self.load(ref, local_dir))

    def transform(self, ctx: StepContext) -> StepResult:
        call = call_on_parent(ctx, "fit_transform")
        value = shape_output(call.result, call.kwargs.get("X"), target=call.target, transform=True)
        return StepResult(value=value, metadata={"class": qualified_name(call.target), "method": call.method})

    def explore(self, ctx: StepContext) -> StepResult:
        """A function, a class method or a method of a stored object; figures become ``plot.png``.

        ``{"modulePath": "sklearn.inspection", "method": "permutation_importance", ...}`` calls a function,
        ``{"modulePath": "sklearn.metrics", "class": "ConfusionMatrixDisplay", "method": "from_estimator"}``
        a class method, ``{"parentName": "model", "method": ...}`` a method of that step's object.
        """
        _headless_matplotlib(ctx)
        request = ctx.request_as(ExploreToolBody)
        if request.parentName:
            result = call_on_parent(ctx, request.method).result
        else:
            result = _call_function(ctx, request, self.allowed_modules)
        figure = _figure_of(result)
        if figure is not None:
            figure.savefig(ctx.output_dir / PLOT_FILE, dpi=100, bbox_inches="tight")
            import matplotlib.pyplot as plt

            plt.close(figure)
            return StepResult(value={"plot": PLOT_FILE, "type": type(result).__name__}, metadata={"plot": PLOT_FILE})
        if isinstance(result, dict):  # a Bunch (permutation_importance): plain dict, stored as arrays
            result = dict(result)
        return StepResult(value=result, metadata={"type": type(result).__name__})


def _call_function(ctx: StepContext, request: ExploreToolBody, allowed: tuple[str, ...]) -> Any:
    """``modulePath.method(...)``, or the class method ``modulePath.class.method(...)``."""
    module_path, method, class_name = request.modulePath, request.method, request.class_
    if not module_path:
        raise StepError("parameter 'modulePath' is required and must be a non-empty string")
    kwargs = method_kwargs(ctx)
    if class_name:
        owner = import_allowed(module_path, class_name, allowed)
        return call_method(owner, method, kwargs)
    function = import_allowed(module_path, method, allowed)
    if not callable(function):
        raise StepError(f"{module_path}.{method} is not a function")
    return function(**kwargs)


def _headless_matplotlib(ctx: StepContext) -> None:
    # Set before matplotlib's first import (scikit-learn imports it lazily inside plotting functions):
    # no display on a worker, and its font cache belongs in the job's folder, not in ~/.cache.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / ".matplotlib"))
    os.environ["MPLBACKEND"] = "Agg"
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:  # imported by an earlier job of this warm worker
        matplotlib.use("Agg")


def _figure_of(result: Any) -> Any:
    if "matplotlib.figure" not in sys.modules:
        return None  # nothing has drawn, so the result cannot be a figure (and importing costs ~0.5 s)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    for candidate in (result, getattr(result, "figure_", None), getattr(result, "figure", None)):
        if isinstance(candidate, Figure):
            return candidate
        if isinstance(candidate, Axes):
            return candidate.figure
    return None
