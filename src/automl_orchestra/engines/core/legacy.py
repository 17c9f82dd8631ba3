"""Models pickled by earlier versions still load: before the engines moved into one folder each, and
before renamed classes took their one name.

A pickle names each class by module path and class name. The adapters' old flat modules
(``engines/flaml.py``...) are now folders, and what ``model/h2o`` and ``model/autogluon`` store is one
:class:`~automl_orchestra.engines.core.model.ModelSpec` (once ``H2OBlueprint``, ``AutoGluonBlueprint``), so a
value stored by an earlier version may name a module or class that no longer exists. Loading retries such a
pickle with the old names mapped to the new ones; new pickles never need it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_OLD = "automl_orchestra.engines."
MOVED_MODULES = {
    _OLD + old: _OLD + new
    for old, new in {
        "base": "core.base",
        "values": "core.values",
        "tables": "core.tables",
        "calls": "core.calls",
        "automl": "core.automl",
        "columns": "core.columns",
        "foreign": "core.foreign",
        "builtin": "builtin.engine",
        "split": "builtin.split",
        "python_code": "python.engine",
        "sklearn": "sklearn.engine",
        "flaml": "flaml.engine",
        "pycaret": "pycaret.engine",
        "h2o": "h2o.engine",
        "autogluon": "autogluon.engine",
        "autokeras": "keras.autokeras",
        "keras": "keras.keras",
        "tpot": "tpot.engine",
        "tsfresh": "timeseries.tsfresh",
        "timeseries": "timeseries.ingest",
        "nas": "nas.steps",
        "compare": "compare.engine",
    }.items()
}
# Classes renamed (or merged into one) after the move, by their (module, class) under the folders.
RENAMED_CLASSES = {
    (_OLD + "h2o.engine", "H2OBlueprint"): (_OLD + "core.model", "ModelSpec"),
    (_OLD + "autogluon.engine", "AutoGluonBlueprint"): (_OLD + "core.model", "ModelSpec"),
}
T = TypeVar("T")


def load_moved(load: Callable[[], T]) -> T:
    """``load()``; if it fails on a class of an old module path, ``load()`` again with the paths mapped."""
    try:
        return load()
    except (AttributeError, ModuleNotFoundError) as error:
        if _OLD not in str(error):
            raise
        with _mapped_unpickler():
            return load()


@contextlib.contextmanager
def _mapped_unpickler() -> Iterator[None]:
    # joblib builds its unpickler from this module global; the worker loads one value at a time, so
    # swapping it for the length of one load affects nothing else.
    from joblib import numpy_pickle

    original = numpy_pickle.NumpyUnpickler

    class MappedUnpickler(original):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            return super().find_class(*renamed(module, name))

    numpy_pickle.NumpyUnpickler = MappedUnpickler
    try:
        yield
    finally:
        numpy_pickle.NumpyUnpickler = original


def renamed(module: str, name: str) -> tuple[str, str]:
    """The (module, class) a pickle's old (module, class) names now."""
    module = MOVED_MODULES.get(module, module)
    return RENAMED_CLASSES.get((module, name), (module, name))
