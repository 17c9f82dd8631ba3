"""The worker-side contract every engine adapter follows, in the spirit of scikit-learn's uniform API:
one class per tool, one method per service, the same context object and the same result type everywhere.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from automl_orchestra.contracts import code_policy, references
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.jobs import JobSpec
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.parameters import StepBody
from automl_orchestra.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

    from automl_orchestra.engines.core.serving import ServedModel

RequestT = TypeVar("RequestT", bound=StepBody)


@dataclass
class StepResult:
    """What a step implementation hands back to the worker.

    Either ``value`` is set (the worker stores it with the engine's serializer) or the implementation wrote
    its output files itself into ``ctx.output_dir`` and sets ``output``.
    """

    value: Any = None
    has_value: bool = True
    output: OutputRef | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)  # derived name -> pandas DataFrame


class StepContext:
    """Everything a step implementation may use: its job, resolved inputs, a scratch and an output folder."""

    def __init__(self, job: JobSpec, store: ArtifactStore, output_dir: Path) -> None:
        self.job = job
        self.store = store
        self.started = time.monotonic()  # budgets count from here: loading inputs and imports are in them
        self.work_dir = job_cwd(job)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self._cache: dict[str, Any] = {}
        self.on_progress: Callable[[float | None, str, dict[str, Any] | None], None] = lambda *_: None

    def progress(self, fraction: float | None, message: str = "", detail: dict[str, Any] | None = None) -> None:
        """Report progress (0..1, or None when unknown) to observers of the step; ``detail`` (small JSON,
        e.g. a search's trial table so far) replaces the previous one on the step's document."""
        self.on_progress(fraction, message, detail)

    def stop_requested(self) -> bool:
        """Whether a cancel asked this step to stop and keep what it has (searches check it between and
        during trials; see ``ToolSpec.stoppable_services``)."""
        return self.job.stop_grace_s > 0 and self.job.stop_file.exists()

    @property
    def params(self) -> dict[str, Any]:
        return self.job.parameters

    @cached_property
    def request(self) -> StepBody:
        """The step's parameters read with its tool's request model: the model the API validated the body
        with (``engines.core.requests``). References (``"$step"``) are still text here: ``resolve`` them."""
        from pydantic import ValidationError

        from automl_orchestra.engines.core.requests import request_model

        model = request_model(self.job.service, self.job.tool)
        try:
            return model.for_job(self.job.step_name, self.job.parameters)
        except ValidationError as exc:
            raise StepError(
                f"the step's parameters do not fit {self.job.service}/{self.job.tool}: {validation_problems(exc)}"
            ) from None

    def request_as(self, model: type[RequestT]) -> RequestT:
        """``request``, typed as the tool's own model (an engine knows which model its service has)."""
        request = self.request
        if not isinstance(request, model):
            raise StepError(
                f"{self.job.service}/{self.job.tool} is read with {type(request).__name__}, not {model.__name__}"
            )
        return request

    @property
    def cpus(self) -> int:
        return max(1, self.job.limits.cpus)

    @property
    def timeout_s(self) -> float:
        """The step's hard wall-time limit (the worker is killed at it); a search budget must fit under it
        with ``contracts.budget.budget_reserve_s`` to spare, which the API made sure of when the step was created."""
        return self.job.limits.timeout_s

    def resolve(self, value: Any, open_file: Callable[[str], Any] | None = None) -> Any:
        """Replace every reference in ``value`` with the referenced step's stored output (or attribute).

        A file output (``dataset/generic``) is its local path, unless ``open_file`` is given: then each
        reference to it is ``open_file(path)`` (code steps pass an opener: Learning Orchestra handed code an
        open binary file), and its attributes are the opened object's."""
        return references.substitute(value, lambda ref: self._resolve_reference(ref, open_file))

    def load_step(self, step: str) -> Any:
        """The stored output of a referenced step (DataFrame, array, object, JSON value or file path)."""
        if step not in self._cache:
            ref = self.job.inputs.get(step)
            if ref is None:
                raise StepError(f"step {step!r} is not an input of this step")
            self._cache[step] = load_output(self.store, ref)
        return self._cache[step]

    def _resolve_reference(self, ref: references.Reference, open_file: Callable[[str], Any] | None = None) -> Any:
        value = self.load_step(ref.step)
        if open_file is not None and self.job.inputs[ref.step].kind == "file":
            value = open_file(value)
        path = ref.step
        for attr in ref.attrs:
            path += f".{attr}"
            value = _get_attribute(value, attr, path)
        if not self.job.allow_code:
            refused = code_policy.refused_value(value)
            if refused is not None:
                raise StepError(f"reference {ref.text} is {refused}: passing it {code_policy.CODE_ROLE_NEEDED}")
        return value


# Errors whose message lists the allowed values but not the one given: the message adds it.
CHOICE_ERRORS = frozenset({"literal_error", "enum"})


def validation_problems(exc: ValidationError) -> str:
    """A request model's validation errors in one line, each with the field it is about; a choice error also
    names the value given ("task: Input should be 'classification' or 'regression', not 'ranking'")."""
    return "; ".join(_problem(error) for error in exc.errors())


def _problem(error: ErrorDetails) -> str:
    where = ".".join(map(str, error["loc"])) or "parameters"
    if error["type"] in CHOICE_ERRORS:
        return f"{where}: {error['msg']}, not {error['input']!r}"
    return f"{where}: {error['msg']}"


def _get_attribute(value: Any, attr: str, path: str) -> Any:
    """A key of a dict, a column of a table, or a public attribute; a private or dunder name (``_index``) is
    only ever a key or a column, never looked up with ``getattr``."""
    if isinstance(value, dict):
        if attr in value:
            return value[attr]
        raise StepError(f"reference ${path}: no key {attr!r} (keys: {sorted(map(str, value))[:20]})")
    columns = getattr(value, "columns", None)
    if columns is not None and attr in list(columns):
        return value[attr]
    if code_policy.is_private(attr):
        raise StepError(f"reference ${path}: references may not reach private or dunder attributes ({attr!r})")
    if hasattr(value, attr):
        return getattr(value, attr)
    raise StepError(f"reference ${path}: {type(value).__name__} has no attribute or column {attr!r}")


class Engine:
    """Base class of engine adapters. Subclasses implement the services they list in the catalog."""

    name: ClassVar[str] = ""
    serializer: ClassVar[str] = "builtin"

    def run(self, service: str, ctx: StepContext) -> StepResult:
        handler = getattr(self, service, None)
        if handler is None:
            raise StepError(f"tool {self.name!r} does not implement service {service!r}")
        result: StepResult = handler(ctx)
        return result

    # Serialization of objects this engine creates; the builtin one (joblib/Parquet/npy/JSON) by default.
    def save(self, value: Any, out_dir: Path) -> OutputRef:
        from automl_orchestra.engines.core import values

        return values.save_value(value, out_dir)

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        from automl_orchestra.engines.core import values

        return values.load_value(ref, local_dir)

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        """A stored model as a serving worker calls it (``engines/core/serving.py``); engines whose models
        need more than ``predict`` / ``predict_proba`` override this."""
        from automl_orchestra.engines.core.serving import ServedModel

        return ServedModel(self.load(ref, local_dir))


def load_engine(implementation: str) -> Engine:
    module_name, _, class_name = implementation.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    engine: Engine = cls()
    return engine


def load_output(store: ArtifactStore, ref: OutputRef) -> Any:
    """Load a stored output with the serializer of the engine that wrote it."""
    return serializer_engine(ref).load(ref, local_output(store, ref))


def load_served(store: ArtifactStore, ref: OutputRef) -> ServedModel:
    """A stored model, loaded by the engine that wrote it in the form a serving worker calls."""
    return serializer_engine(ref).load_served(ref, local_output(store, ref))


def serializer_engine(ref: OutputRef) -> Engine:
    """The engine whose serializer reads ``ref``; refused for an object of another engine environment."""
    from automl_orchestra.contracts import catalog

    if foreign_object(ref):
        raise StepError(
            f"this output was written in the {ref.environment!r} engine environment and cannot be loaded "
            f"in {current_environment()!r}; reference a file-based output (a dataset or array step) instead"
        )
    spec = catalog.tool(ref.serializer)
    return load_engine(spec.implementation) if spec and spec.implementation else Engine()


def local_output(store: ArtifactStore, ref: OutputRef) -> Path:
    """The output's folder on this machine (a remote store's files are copied to the input cache once)."""
    if store.is_local:
        return Path(store.path(ref.prefix))
    local = Path(os.environ.get("ORCHESTRA_INPUT_CACHE", "/tmp")) / "orchestra-inputs" / ref.prefix
    if not local.exists():
        store.fs.get(store.path(ref.prefix), str(local), recursive=True)
    return local


def job_cwd(job: JobSpec) -> Path:
    """The step's working directory: empty at start, beside (not holding) the worker's logs and output."""
    return Path(job.work_dir) / "cwd"


def current_environment() -> str:
    return os.environ.get("ORCHESTRA_ENVIRONMENT", "main")


def foreign_object(ref: OutputRef) -> bool:
    """Whether ``ref`` is an object (a pickle) written in another engine environment: not loadable here."""
    return ref.kind == "object" and ref.environment != current_environment()
