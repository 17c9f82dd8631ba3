"""PyCaret 2 arguments on PyCaret 3 (``engines/pycaret/compat.py``), without PyCaret: the patching itself.

The real thing, the seed's Appendix A code with ``silent=True`` in the PyCaret environment, is in
``tests/api/test_pycaret.py``.
"""

from __future__ import annotations

import inspect
import sys
from types import ModuleType
from typing import Any

import pytest

from automl_orchestra.engines.pycaret import compat


def _task_module(name: str) -> ModuleType:
    """A stand-in for ``pycaret.<task>``: a functional ``setup`` and an experiment class, both strict."""
    module = ModuleType(name)

    def setup(data: Any = None, target: Any = None, session_id: int | None = None) -> dict[str, Any]:
        return {"data": data, "target": target, "session_id": session_id}

    class ClassificationExperiment:
        def setup(self, data: Any = None, target: Any = None) -> str:
            return f"{data}:{target}"

    module.setup = setup  # type: ignore[attr-defined]
    module.ClassificationExperiment = ClassificationExperiment  # type: ignore[attr-defined]
    return module


def test_silent_is_dropped_with_a_warning_and_other_arguments_still_fail(capsys: pytest.CaptureFixture[str]) -> None:
    module = _task_module("pycaret.fake")
    compat.patch_module(module)
    compat.patch_module(module)  # idempotent: one wrapper, one warning per call
    assert module.setup(data="d", target="y", silent=True) == {"data": "d", "target": "y", "session_id": None}
    assert capsys.readouterr().err.count("warning: setup(silent=True) ignored") == 1
    assert module.ClassificationExperiment().setup(data="d", target="y", silent=True) == "d:y"
    with pytest.raises(TypeError, match="unexpected keyword argument 'profile_typo'"):
        module.setup(data="d", profile_typo=True)
    assert "silent" not in inspect.signature(module.setup).parameters  # PyCaret's own signature is shown


def test_the_context_patches_imported_task_modules_and_leaves_no_import_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _task_module("pycaret.anomaly")
    monkeypatch.setitem(sys.modules, "pycaret.anomaly", module)
    hooks = list(sys.meta_path)
    with compat.pycaret2_setup_arguments():
        assert module.setup(data=1, silent=False)["data"] == 1
        assert len(sys.meta_path) == len(hooks) + 1
    assert sys.meta_path == hooks


def test_only_prompt_silencing_arguments_are_listed() -> None:
    assert set(compat.PYCARET2_SETUP_ARGUMENTS) == {"silent"}
    assert compat.drop_pycaret2_arguments({"silent": True, "fold": 3}) == {"fold": 3}
