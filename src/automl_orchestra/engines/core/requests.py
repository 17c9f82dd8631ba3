"""Which request model a ``service/tool`` step has: the one its catalog entry names, or its service's family.

Light (pydantic and the catalog), so the API validates bodies with the same model a worker reads the
parameters with; the engine's own model module is imported only when that tool is asked for.
"""

from __future__ import annotations

import importlib
from functools import cache

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.parameters import (
    AutoMLBody,
    CodeBody,
    DatasetBody,
    EvaluateBody,
    ExploreToolBody,
    MethodBody,
    ModelBody,
    StepBody,
)

# The model of a service's steps when the tool's catalog entry names none of its own.
FAMILIES: dict[str, type[StepBody]] = {
    "dataset": DatasetBody,
    "transform": MethodBody,
    "explore": ExploreToolBody,
    "model": ModelBody,
    "train": MethodBody,
    "tune": MethodBody,
    "predict": MethodBody,
    "evaluate": EvaluateBody,
    "automl": AutoMLBody,
    "function": CodeBody,
    "builder": CodeBody,
}


@cache
def request_model(service: str, tool: str) -> type[StepBody]:
    """The request model of ``/{service}/{tool}``."""
    spec = catalog.tool(tool)
    path = spec.parameters.get(service) if spec is not None else None
    if path:
        module_name, _, class_name = path.partition(":")
        model: type[StepBody] = getattr(importlib.import_module(module_name), class_name)
        return model
    if service not in FAMILIES:
        raise KeyError(f"{service}/{tool} has no request model: its catalog entry must name one")
    return FAMILIES[service]
