"""PyCaret 2 code on PyCaret 3: the ``setup`` arguments PyCaret 3 removed that only silenced a prompt.

The seed's pipelines were written for PyCaret 2 (Appendix A: ``classification.setup(..., silent=True)``).
PyCaret 3 never asks for confirmation and removed those arguments, so the same call fails with
``TypeError: setup() got an unexpected keyword argument 'silent'``. They are dropped here with a warning
line in the step's log instead; an argument that changed what PyCaret computes is not in the list and
still fails, so no result silently differs from what the code asked for.

Imports no PyCaret at module level: the main environment imports the pycaret engine to read its tables.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

# Argument -> why dropping it changes nothing in PyCaret 3 (docs/learning-orchestra.md lists them).
PYCARET2_SETUP_ARGUMENTS: Mapping[str, str] = {
    "silent": "PyCaret 2 asked to confirm the inferred column types unless silent=True; PyCaret 3 never asks",
}
# The modules of PyCaret's functional API (``from pycaret import classification; classification.setup(...)``).
TASK_MODULES = (
    "pycaret.classification",
    "pycaret.regression",
    "pycaret.clustering",
    "pycaret.anomaly",
    "pycaret.time_series",
)
_WRAPPED = "__orchestra_pycaret2__"


def drop_pycaret2_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the PyCaret 2 arguments PyCaret 3 removed, each dropped one warned about on stderr
    (the step's log)."""
    for name in sorted(set(kwargs) & set(PYCARET2_SETUP_ARGUMENTS)):
        reason = PYCARET2_SETUP_ARGUMENTS[name]
        print(f"warning: setup({name}={kwargs[name]!r}) ignored: {reason}", file=sys.stderr, flush=True)
    return {key: value for key, value in kwargs.items() if key not in PYCARET2_SETUP_ARGUMENTS}


def _tolerant(setup: Callable[..., Any]) -> Callable[..., Any]:
    """``setup`` that accepts the PyCaret 2 arguments (and drops them); its signature stays PyCaret's."""
    if getattr(setup, _WRAPPED, False):
        return setup

    @functools.wraps(setup)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return setup(*args, **drop_pycaret2_arguments(kwargs))

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def patch_module(module: ModuleType) -> None:
    """Make the ``setup`` of a PyCaret task module (its functional API, and its experiment classes)
    tolerant. The package re-exports ``functional.setup``: both names are patched, as either may be used."""
    targets = [module, sys.modules.get(f"{module.__name__}.functional")]
    for target in targets:
        if target is not None and callable(getattr(target, "setup", None)):
            target.setup = _tolerant(target.setup)  # type: ignore[attr-defined]
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__name__.endswith("Experiment") and "setup" in vars(value):
            value.setup = _tolerant(value.setup)  # type: ignore[attr-defined]


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a task module right after its first import: the user's code imports the task it needs, and
    importing all five ahead of time would cost every builder step seconds."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in TASK_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            patch_module(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextlib.contextmanager
def pycaret2_setup_arguments() -> Iterator[None]:
    """While the block runs, every PyCaret task module the code imports (or has imported) accepts the PyCaret
    2 ``setup`` arguments of ``PYCARET2_SETUP_ARGUMENTS``. Patched modules stay patched: code steps run in a
    forked child that ends with the step."""
    for name in TASK_MODULES:
        if name in sys.modules:
            patch_module(sys.modules[name])
    finder = _PatchOnImport()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
