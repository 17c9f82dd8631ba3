"""What needs the code role: the one policy the API applies at POST and the worker applies again before it
imports, constructs or calls anything a request names (``docs/security.md``).

A role that may not run code reaches library classes and functions by name only. It may not reach:

(a) names that read or write files, open sockets or run callables: modules (``joblib``, ``sklearn.utils``...),
    classes, functions and methods matching :data:`DENIED_NAMES` (``load_*``, ``dump_*``, ``fetch_*``,
    ``read_*``, ``to_*``, ``save*``, ``FunctionTransformer``...), and keyword parameters that name a path or
    take a callable (:data:`DENIED_PARAMETERS`: ``f``, ``path``, ``memory``, ``func``, ``score_func``...);
(b) a Python callable (or a module) as the value of a reference: the worker refuses it after resolution;
(c) private attributes: a reference segment starting with ``_`` is refused for every role, except a table
    column or JSON key that the referenced step's output lists (checked at POST, looked up only as a key
    in the worker, never with ``getattr``).

Light on purpose (no third-party imports): the API and every engine environment load it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

CODE_ROLE_NEEDED = "needs a role allowed to run code"
# The step ``meta`` key that says its creator had the code role: set at POST (``api/dependencies.py``),
# dropped by a PATCH (``steps/service.py``), read by the scheduler into ``JobSpec.allow_code``.
ALLOW_CODE_META = "allowCode"

# Modules (and their submodules) whose every name needs the code role.
DENIED_MODULES: tuple[str, ...] = (
    "joblib",
    "sklearn.utils",
    "sklearn.externals",
    "sklearn.experimental",
    "xgboost.collective",
    "xgboost.tracker",
    "xgboost.dask",
    "xgboost.spark",
    "xgboost.federated",
    "lightgbm.dask",
)

# Class, function and method names (any dotted segment; case-insensitive) that need the code role.
DENIED_NAMES: tuple[str, ...] = (
    "load*",
    "dump*",
    "fetch_*",
    "read_*",
    "to_*",
    "save*",
    "write*",
    "open*",
    "export*",
    "*_file",
    "*_files",
    "*svmlight*",
    "*data_home*",
    "savefig",
    "FunctionTransformer",
    "make_scorer",
    "Parallel",
    "delayed",
    "parallel_backend",
    "register_*",
    "set_config",
    "config_context",
    "*DMatrix",
    "Booster",
    "Dataset",
    "*Tracker",
    "*socket*",
    "*server*",
)

# Keyword parameters (at any depth of classParameters/methodParameters; ``a__b`` grid keys are read by
# their last part) that name a path or take a callable.
DENIED_PARAMETERS: frozenset[str] = frozenset(
    {
        # paths
        "f",
        "file",
        "filename",
        "fname",
        "path",
        "filepath",
        "container_path",
        "data_home",
        "out_file",
        "output_file",
        "model_file",
        "log_file",
        "memory",
        "directory",
        "cache_dir",
        "save_path",
        "checkpoint_path",
        # callables
        "func",
        "inverse_func",
        "score_func",
        "callbacks",
        "callback",
        "fobj",
        "feval",
        "obj",
        "custom_metric",
    }
)


class PolicyViolation(ValueError):
    """A request needs the code role; the message says what and why."""


def is_private(attr: str) -> bool:
    """Whether an attribute name is private or dunder (starts with ``_``)."""
    return attr.startswith("_")


def denied_module(module_path: str) -> bool:
    return any(module_path == root or module_path.startswith(root + ".") for root in DENIED_MODULES)


def denied_name(name: str) -> bool:
    """Whether a class, function or method name (dotted: each part) needs the code role."""
    return any(
        fnmatch.fnmatchcase(part.lower(), pattern.lower()) for part in name.split(".") for pattern in DENIED_NAMES
    )


def denied_parameters(parameters: Any) -> list[str]:
    """Keyword names in ``parameters`` (dict keys at any depth) that need the code role."""
    return sorted({key for key in _keys(parameters) if key.split("__")[-1].lower() in DENIED_PARAMETERS})


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _keys(item)


def violations(
    module_path: str | None = None,
    names: Iterable[str | None] = (),
    parameters: Iterable[Any] = (),
) -> list[str]:
    """Why a call of ``module_path``'s ``names`` (class, function, method) with ``parameters`` (keyword
    dicts) needs the code role; empty when it does not."""
    found: list[str] = []
    if module_path and (denied_module(module_path) or denied_name(module_path)):
        found.append(f"module {module_path!r}")
    for name in names:
        if name and denied_name(name):
            found.append(f"{name!r} (reads or writes files, opens connections or runs callables)")
    for keywords in parameters:
        for key in denied_parameters(keywords):
            found.append(f"parameter {key!r} (a path or a callable)")
    return found


def check(
    module_path: str | None = None,
    names: Iterable[str | None] = (),
    parameters: Iterable[Any] = (),
) -> None:
    """Raise :class:`PolicyViolation` unless a role without code rights may make this call."""
    found = violations(module_path, names, parameters)
    if found:
        raise PolicyViolation(f"{'; '.join(found)}: {CODE_ROLE_NEEDED}")


def check_request(request: Any) -> None:
    """:func:`check` on a request body (``modulePath``, ``class``, ``method``, ``classParameters``,
    ``methodParameters``; whichever it has)."""
    check(
        getattr(request, "modulePath", None),
        (getattr(request, "class_", None), getattr(request, "method", None)),
        (getattr(request, "classParameters", None), getattr(request, "methodParameters", None)),
    )


def refused_value(value: Any) -> str | None:
    """Why a resolved reference value may not be passed by a job without code rights (a callable or a
    module), else None."""
    import inspect

    if inspect.ismodule(value):
        return "a module"
    if callable(value):
        return f"a callable ({type(value).__name__})"
    return None
