"""``POST /automl/compare``: one request, expanded at once into ordinary steps.

``{name}_split`` (``transform/split``: the same train/holdout rows for everyone), one ``automl/{engine}``
step ``{name}_{engine}`` per engine on the train rows (visible, re-executable, run in parallel up to the
executor's capacity, each with the whole budget), and ``{name}`` itself (``automl/compare``), which depends
on all of them, tolerates the failure of some and builds the leaderboard (engines/compare/engine.py).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from automl_orchestra.api.dependencies import Orchestra, checked_step
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.config import Settings
from automl_orchestra.contracts import catalog, references
from automl_orchestra.contracts.parameters import AutoMLBody, StepBody
from automl_orchestra.engines.compare.parameters import CompareBody
from automl_orchestra.engines.core.requests import request_model
from automl_orchestra.steps.documents import step_url
from automl_orchestra.steps.service import NewStep, StepService, derived_name

# The tabular automl engines a comparison runs when the request names none, in this order.
DEFAULT_ENGINES = ("flaml", "autogluon", "h2o", "pycaret", "tpot")
# Fields of the compare body that are not the declarative automl body every engine step gets.
COMPARE_FIELDS = frozenset({"engines", "holdout", "candidates", "holdoutData", "skipped", "options"})


def create(orchestra: Orchestra, role: str, body: StepBody) -> JSONResponse:
    """Expand ``body`` into its steps, each checked like a step of its own, and create them in one
    transaction: a comparison exists whole or not at all."""
    if not isinstance(body, CompareBody):
        raise TypeError(f"automl/compare needs a CompareBody, got {type(body).__name__}")
    settings = orchestra.settings
    if body.candidates or body.holdoutData or body.skipped:
        raise ApiError(422, "'candidates', 'holdoutData' and 'skipped' are set by the server; leave them out")
    engines, skipped = chosen_engines(body.engines, settings)
    unknown_options = sorted(set(body.options) - set(engines))
    if unknown_options:
        raise ApiError(422, f"options of automl/compare are keyed by engine; {unknown_options} are not in {engines}")
    split = f"{body.name}_split"
    children = {engine: f"{body.name}_{engine}" for engine in engines}
    _check_names(orchestra.service, body.name, split, children)
    steps = [_split_step(settings, role, body, split)]
    common = {k: v for k, v in body.to_parameters().items() if k not in COMPARE_FIELDS}
    limits = body.limits.model_dump(exclude_none=True)
    for engine, child in children.items():
        data = {**common, "parentName": split, "limits": limits}
        child_body = _child_body(engine, child, data, body.options.get(engine))
        description = f"{engine} in comparison {body.name}"
        steps.append(
            checked_step(settings, role, "automl", engine, child_body, child_body.to_parameters(), description)
        )
    parameters = {
        **body.to_parameters(),
        "engines": engines,
        "candidates": {engine: f"${child}" for engine, child in children.items()},
        "holdoutData": f"${derived_name(split, 'holdout')}",
        "skipped": skipped,
    }
    compare = checked_step(settings, role, "automl", "compare", body, parameters)
    # The limits (and the timeout sized for the budget) are the engine steps'; the compare step only builds
    # the leaderboard once they are done, under the server's defaults as before.
    compare.limits, compare.retryable = {}, False
    steps.append(compare)
    step = orchestra.service.create_many(steps)[-1]
    url = step_url(step)
    return JSONResponse({"result": url}, status_code=201, headers={"Location": url})


def _split_step(settings: Settings, role: str, body: CompareBody, split: str) -> NewStep:
    parameters = {
        "parentName": body.parentName,
        "target": body.target,
        "task": body.task,
        "holdout": body.holdout,
        "seed": body.seed,
    }
    # The split has no request model of its own (the server writes its parameters): a bare body carries its
    # name through the same code-role, limits and environment checks.
    bare = StepBody(name=split, description=f"train/holdout split of {body.name}")
    return checked_step(settings, role, "transform", "split", bare, parameters)


def chosen_engines(requested: list[str] | None, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The engines to run and, for a default list, those left out with the reason."""
    if requested:
        if len(set(requested)) != len(requested):
            raise ApiError(422, f"engines lists an engine twice: {requested}")
        for engine in requested:
            reason = unavailable(engine, settings)
            if reason:
                raise ApiError(422, f"engine {engine!r} cannot be compared: {reason}")
        return list(requested), {}
    engines, skipped = [], {}
    for engine in DEFAULT_ENGINES:
        reason = unavailable(engine, settings)
        if reason:
            skipped[engine] = reason
        else:
            engines.append(engine)
    if not engines:
        raise ApiError(503, f"no tabular automl engine is installed on this server: {skipped}")
    return engines, skipped


def unavailable(engine: str, settings: Settings) -> str | None:
    """Why ``engine`` cannot take part in a comparison on this server, or None."""
    spec = catalog.tool(engine)
    if spec is None or "automl" not in spec.services or not spec.implementation or engine == "compare":
        tabular = sorted(n for n, s in catalog.TOOLS.items() if "automl" in s.services and "tabular" in s.capabilities)
        return f"it is not a tabular automl engine of this server (those are {tabular})"
    if "tabular" not in spec.capabilities:
        return "it is not a tabular engine"
    missing = settings.missing_environment(spec.environment)
    if missing:
        return f"it runs in {missing}"
    library = spec.allowed_modules[0].split(".")[0] if spec.allowed_modules else ""
    if spec.environment == "main" and library and importlib.util.find_spec(library) is None:
        return f"its library {library!r} is not installed"  # find_spec locates, it does not import
    return None


def _check_names(service: StepService, name: str, split: str, children: dict[str, str]) -> None:
    """Every name the expansion creates, checked before creating any (no half-made comparison)."""
    names = [name, derived_name(name, "leaderboard"), split, derived_name(split, "holdout")]
    for child in children.values():
        names += [child, derived_name(child, "leaderboard")]
    for candidate in names:
        if not references.is_valid_name(candidate):
            raise ApiError(422, f"the name {name!r} is too long for the comparison's step {candidate!r}")
        if service.exists(candidate):
            raise ApiError(409, f"a step named {candidate!r} already exists; choose another comparison name")


def _child_body(engine: str, name: str, common: dict[str, Any], options: Any) -> AutoMLBody:
    """The engine step's body, validated with that engine's own automl body."""
    data = {**common, "name": name, "options": options or {}}
    try:
        body = request_model("automl", engine).model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, f"invalid request for engine {engine!r}: " + summarize(exc.errors())) from exc
    if not isinstance(body, AutoMLBody):
        raise TypeError(f"automl/{engine} has no automl body: {type(body).__name__}")
    return body
