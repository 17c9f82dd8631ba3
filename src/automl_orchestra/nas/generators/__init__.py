"""Generator plug-ins by name. Adding one is a class with ``name`` and ``propose`` registered here or
through the ``automl_orchestra.nas_generators`` entry-point group; the scheduler (``automl/nas``) only
passes names along and never changes."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from automl_orchestra.nas.generators.base import Generator, Trial
from automl_orchestra.nas.generators.evolution import AgingEvolution
from automl_orchestra.nas.generators.random_search import RandomSearch
from automl_orchestra.nas.generators.tpe import TpeSearch

ENTRY_POINT_GROUP = "automl_orchestra.nas_generators"
GENERATORS: dict[str, type[Generator]] = {cls.name: cls for cls in (RandomSearch, AgingEvolution, TpeSearch)}


def available() -> dict[str, type[Generator]]:
    found = dict(GENERATORS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point.load())
    return found


def create(name: str, options: dict[str, Any] | None = None) -> Generator:
    known = available()
    if name not in known:
        raise ValueError(f"unknown generator {name!r}; available: {sorted(known)}")
    return known[name](options)


__all__ = ["GENERATORS", "Generator", "Trial", "available", "create"]
