"""Reflection for the Learning Orchestra services: instantiate an allowed class, call a method on a stored
object, shape the result. Shared by every engine whose steps are "``class`` from ``modulePath``" and
"``method`` with ``methodParameters`` on ``parentName``" (scikit-learn, FLAML, and the engines to come).

What a request may reach is deliberately narrow: modules under the engine's allowed roots only, public names
only (no ``_private`` or dunder segment, so no ``__globals__``/``__subclasses__`` escapes), and the object
finally reached must itself be defined in an allowed module (``sklearn.datasets.os.system`` is refused even
though ``sklearn.datasets`` is allowed).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from automl_orchestra.contracts import code_policy
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import EvaluateBody, ExploreToolBody, MethodBody, ModelBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.values import readable_json

_PUBLIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# methodParameters that hold a target: a one-column DataFrame there is almost always meant as a vector.
TARGET_KEYS = frozenset({"y", "y_train", "y_val", "y_test", "y_true", "y_pred"})
# The libraries that take every core unless told otherwise, and the parameter names they accept for it.
_THREAD_PARAMETERS = {
    "lightgbm": ("n_jobs", "num_threads", "nthread", "nthreads", "num_thread"),
    "xgboost": ("n_jobs", "nthread"),
}


# ----- reflection ---------------------------------------------------------------------------------


def import_allowed(module_path: str, class_name: str, allowed_modules: Sequence[str]) -> Any:
    """``module_path.class_name`` (a class or function; ``class_name`` may be dotted), if allowed."""
    _public_path(module_path, "modulePath")
    if not within(module_path, allowed_modules):
        raise StepError(
            f"module {module_path!r} is not allowed for this tool; allowed: {sorted(allowed_modules)} "
            "and their submodules"
        )
    parts = _public_path(class_name, "class")
    try:
        target: Any = importlib.import_module(module_path)
    except ImportError as exc:
        raise StepError(f"cannot import {module_path!r}: {exc}") from None
    path = module_path
    for part in parts:
        if not hasattr(target, part):
            raise StepError(f"{path!r} has no attribute {part!r}{_did_you_mean(part, target)}")
        target = getattr(target, part)
        path = f"{path}.{part}"
    origin = target.__name__ if inspect.ismodule(target) else getattr(target, "__module__", None)
    if not isinstance(origin, str) or not within(origin, allowed_modules):
        raise StepError(f"{path!r} comes from {origin!r}, outside the allowed modules {sorted(allowed_modules)}")
    return target


def call_method(target: Any, method: str, kwargs: dict[str, Any]) -> Any:
    """``target.method(**kwargs)`` for a public method name."""
    if not isinstance(method, str) or not _PUBLIC_NAME.match(method):
        raise StepError(f"method {method!r} must be a public method name (letters, digits, '_'; no leading '_')")
    bound = getattr(target, method, None)
    if bound is None:
        raise StepError(f"{type(target).__name__} has no method {method!r}{_did_you_mean(method, target)}")
    if not callable(bound):
        raise StepError(f"{type(target).__name__}.{method} is not a method")
    for name in kwargs:
        if not isinstance(name, str) or not name.isidentifier():
            raise StepError(f"parameter name {name!r} is not a valid Python identifier")
    return bound(**kwargs)


def within(module_path: str, roots: Sequence[str]) -> bool:
    return any(module_path == root or module_path.startswith(root + ".") for root in roots)


def _public_path(text: Any, what: str) -> list[str]:
    parts = text.split(".") if isinstance(text, str) else []
    if not parts or not all(_PUBLIC_NAME.match(part) for part in parts):
        raise StepError(f"{what} {text!r} must be a dotted name of public identifiers (no leading '_')")
    return parts


def _did_you_mean(name: str, target: Any) -> str:
    public = [attr for attr in dir(target) if not attr.startswith("_")]
    close = difflib.get_close_matches(name, public, n=3)
    return f"; did you mean {close}?" if close else ""


def thread_defaults(factory: Any, kwargs: dict[str, Any], cpus: int) -> dict[str, Any]:
    """``kwargs`` plus ``n_jobs=cpus`` when the class takes a thread count and none was given.

    A worker is allowed ``cpus`` cores; LightGBM, XGBoost and ``n_jobs=-1`` estimators would otherwise take
    every core of the machine and starve the steps running beside it.
    """
    root = (getattr(factory, "__module__", "") or "").split(".")[0]
    names = _THREAD_PARAMETERS.get(root, ("n_jobs",))
    if any(name in kwargs for name in names) or not accepts(factory, "n_jobs"):
        return kwargs
    return {**kwargs, "n_jobs": cpus}


def accepts(factory: Any, name: str) -> bool:
    """Whether calling ``factory`` accepts keyword ``name`` (XGBoost's classes take it via ``**kwargs``)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    if name in signature.parameters:
        return True
    takes_kwargs = any(param.kind is inspect.Parameter.VAR_KEYWORD for param in signature.parameters.values())
    root = (getattr(factory, "__module__", "") or "").split(".")[0]
    return takes_kwargs and root in ("xgboost", "flaml")


def describe_parameters(instance: Any, given: dict[str, Any]) -> dict[str, Any]:
    """An instance's constructor parameters as JSON for metadata (``repr`` where JSON has no form)."""
    get_params = getattr(instance, "get_params", None)
    parameters = given
    if callable(get_params):
        try:
            parameters = get_params(deep=False)
        except TypeError:  # not scikit-learn's signature
            parameters = given
    return {str(key): readable_json(value) for key, value in parameters.items()}


# ----- results ------------------------------------------------------------------------------------


# The one column of a prediction table, for every engine.
PREDICTION = "prediction"


def as_scalar(value: Any) -> float | None:
    """A real number as float (for metrics), else None; booleans are not scores."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def shape_output(result: Any, features: Any, *, target: Any = None, transform: bool = False) -> Any:
    """An array computed from a DataFrame, as a DataFrame with one row per row of it.

    Predictions have one shape whatever the engine: one column ``prediction`` (class probabilities: one
    column per class), rows in the order of ``X`` with a fresh index, so the caller's pandas index never
    becomes a column of the result. Transformed features are named after ``get_feature_names_out()`` and
    keep ``X``'s index (they are features of the same rows).
    """
    if isinstance(result, pd.Series):
        if transform:
            return result.to_frame(name=str(result.name) if result.name is not None else PREDICTION)
        return pd.DataFrame({PREDICTION: result.to_numpy()})
    if not isinstance(result, np.ndarray) or not isinstance(features, pd.DataFrame):
        return result
    if result.ndim not in (1, 2) or len(result) != len(features):
        return result
    index = features.index if transform else None
    if result.ndim == 1:
        return pd.DataFrame({PREDICTION: result}, index=index)
    columns = _output_columns(target, result.shape[1], transform)
    return pd.DataFrame(result, columns=columns, index=index)


def _output_columns(target: Any, width: int, transform: bool) -> list[str]:
    names: Any = None
    if transform and hasattr(target, "get_feature_names_out"):
        try:
            names = list(target.get_feature_names_out())
        except Exception:  # noqa: BLE001 - many transformers cannot name their outputs; fall back below
            names = None
    elif not transform:
        names = getattr(target, "classes_", None)
    if names is not None and len(names) == width:
        return _unique([str(name) for name in names])
    prefix = "x" if transform else "prediction_"
    return [f"{prefix}{i}" for i in range(width)]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        result.append(name if count == 0 else f"{name}.{count}")
    return result


def fitted_summary(fitted: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metadata and metrics of a fitted search (``best_score_``/``best_params_`` of *SearchCV)."""
    metadata: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    best_params = getattr(fitted, "best_params_", None)
    if isinstance(best_params, dict):
        metadata["bestParams"] = readable_json(best_params)
    best_score = as_scalar(getattr(fitted, "best_score_", None))
    if best_score is not None:
        metadata["bestScore"] = best_score
        metrics["bestScore"] = best_score
    return metadata, metrics


# ----- the services -------------------------------------------------------------------------------


@dataclass
class MethodCall:
    target: Any
    method: str
    kwargs: dict[str, Any]
    result: Any


def method_kwargs(ctx: StepContext, key: str = "methodParameters") -> dict[str, Any]:
    """The request's ``methodParameters`` (or ``classParameters``) resolved; a one-column DataFrame passed as
    a target becomes a Series."""
    check_code_policy(ctx)
    kwargs = ctx.resolve(_keyword_parameters(ctx, key))
    for name in TARGET_KEYS & set(kwargs):
        value = kwargs[name]
        if isinstance(value, pd.DataFrame) and value.shape[1] == 1:
            kwargs[name] = value.iloc[:, 0]
    return dict(kwargs)


def check_code_policy(ctx: StepContext) -> None:
    """The worker's copy of the POST check (``contracts/code_policy.py``): a job whose creator may not run code
    does not reach names or parameters that read or write files, open connections or run callables. Every
    reflective call of this module resolves its keyword parameters (``method_kwargs``) before it imports,
    constructs or calls, so it passes here; callables passed by reference are refused by ``ctx.resolve``."""
    if ctx.job.allow_code:
        return
    try:
        code_policy.check_request(ctx.request)
    except code_policy.PolicyViolation as exc:
        raise StepError(str(exc)) from None


def _keyword_parameters(ctx: StepContext, key: str) -> dict[str, Any]:
    """The unresolved keyword arguments a request holds under ``key``: a model's ``classParameters`` or a
    method call's ``methodParameters`` (the two names every reflection engine calls ``method_kwargs`` with)."""
    if key == "classParameters":
        return dict(ctx.request_as(ModelBody).classParameters)
    if key == "methodParameters":
        return dict(method_request(ctx).methodParameters)
    raise StepError(f"the request has no keyword parameters {key!r}")


def method_request(ctx: StepContext) -> MethodBody | ExploreToolBody:
    """The request of a step that calls a method: a ``MethodBody`` (train, predict...) or an explore call."""
    request = ctx.request
    if not isinstance(request, MethodBody | ExploreToolBody):
        raise StepError(f"{ctx.job.service}/{ctx.job.tool} is read with {type(request).__name__}: no method to call")
    return request


def call_on_parent(
    ctx: StepContext, default_method: str, defaults: Mapping[str, Mapping[str, Any]] | None = None
) -> MethodCall:
    """Call ``method`` (or ``default_method``) with ``methodParameters`` on the ``parentName`` object;
    ``defaults[method]`` fills arguments the user did not give (an engine's quiet or safe settings)."""
    request = method_request(ctx)
    target = ctx.load_step(parent_name(request))
    method = request.method or default_method
    kwargs = method_kwargs(ctx)
    if not ctx.job.allow_code and code_policy.denied_name(method):
        raise StepError(f"method {method!r}: {code_policy.CODE_ROLE_NEEDED}")
    for key, value in (defaults or {}).get(method, {}).items():
        kwargs.setdefault(key, value)
    print(f"calling {type(target).__name__}.{method}({', '.join(kwargs)})", flush=True)
    return MethodCall(target, method, kwargs, call_method(target, method, kwargs))


def parent_name(request: MethodBody | ExploreToolBody) -> str:
    """``parentName``, which an explore call may leave out (it then calls a function) but a method needs."""
    if not request.parentName:
        raise StepError("parameter 'parentName' is required and must be a non-empty string")
    return request.parentName


def score_metrics(target: Any, kwargs: dict[str, Any], names: list[str]) -> dict[str, float]:
    """scikit-learn scorers (``accuracy``, ``f1``, ``roc_auc``, ``neg_mean_squared_error``...) on X/y."""
    from sklearn.metrics import get_scorer, get_scorer_names

    if "X" not in kwargs or "y" not in kwargs:
        raise StepError("evaluating 'metrics' needs methodParameters 'X' and 'y'")
    scores: dict[str, float] = {}
    for name in names:
        try:
            scorer = get_scorer(name)
        except ValueError:
            raise StepError(f"unknown metric {name!r}; known metrics: {sorted(get_scorer_names())}") from None
        value = as_scalar(scorer(target, kwargs["X"], kwargs["y"]))
        if value is None:
            raise StepError(f"metric {name!r} did not return a number")
        scores[name] = value
    return scores


class MethodEngine(Engine):
    """``model``, ``train``, ``tune``, ``evaluate`` and ``predict`` for an engine's allowed modules.

    Subclasses set ``allowed_modules`` (from the registry) and may override :meth:`configure` (defaults for
    constructor parameters) and :meth:`summarize` (what a fitted object reports).
    """

    allowed_modules: ClassVar[tuple[str, ...]] = ()

    def model_factory(self, ctx: StepContext) -> tuple[str, str, Any]:
        """The module, class name and class that ``model/{tool}`` names, imported from the tool's allowed
        modules."""
        request = ctx.request_as(ModelBody)
        module_path, class_name = request.modulePath, request.class_
        factory = import_allowed(module_path, class_name, self.allowed_modules)
        if not callable(factory):
            raise StepError(f"{module_path}.{class_name} cannot be instantiated")
        return module_path, class_name, factory

    def model(self, ctx: StepContext) -> StepResult:
        module_path, class_name, factory = self.model_factory(ctx)
        kwargs = self.configure(factory, method_kwargs(ctx, "classParameters"), ctx)
        instance = factory(**kwargs)
        metadata = {
            "class": f"{module_path}.{class_name}",
            "estimatorParameters": describe_parameters(instance, kwargs),
        }
        return StepResult(value=instance, metadata=metadata)

    def configure(self, factory: Callable[..., Any], kwargs: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return thread_defaults(factory, kwargs, ctx.cpus)

    def summarize(self, fitted: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return fitted_summary(fitted)

    def train(self, ctx: StepContext) -> StepResult:
        return self._fit(ctx)

    def tune(self, ctx: StepContext) -> StepResult:
        return self._fit(ctx)

    def _fit(self, ctx: StepContext) -> StepResult:
        # The stored object is the one the method mutated (fit returns self by convention, not always).
        call = call_on_parent(ctx, "fit")
        metadata, metrics = self.summarize(call.target)
        metadata = {"class": qualified_name(call.target), "method": call.method, **metadata}
        return StepResult(value=call.target, metadata=metadata, metrics=metrics)

    def evaluate(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(EvaluateBody)
        names = request.metrics
        if names:
            _no_duplicates(names, "metrics")
            target = ctx.load_step(request.parentName)
            scores = score_metrics(target, method_kwargs(ctx), names)
            return StepResult(
                value=scores, metadata={"class": qualified_name(target), "metricNames": names}, metrics=scores
            )
        call = call_on_parent(ctx, "score")
        score = as_scalar(call.result)
        metrics = {"score": score} if score is not None else {}
        metadata = {"class": qualified_name(call.target), "method": call.method}
        return StepResult(value=call.result, metadata=metadata, metrics=metrics)

    def predict(self, ctx: StepContext) -> StepResult:
        call = call_on_parent(ctx, "predict")
        value = shape_output(call.result, call.kwargs.get("X"), target=call.target)
        return StepResult(value=value, metadata={"class": qualified_name(call.target), "method": call.method})


def _no_duplicates(values: list[str], key: str) -> None:
    if len(set(values)) != len(values):
        duplicates = sorted({item for item in values if values.count(item) > 1})
        raise StepError(f"parameter {key!r} lists {duplicates} more than once")


def qualified_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
