"""The code policy: what a role without code rights may not reach (contracts/code_policy.py)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from automl_orchestra.contracts import code_policy


@pytest.mark.parametrize(
    "name",
    [
        "dump_svmlight_file",
        "load_files",
        "load_svmlight_files",
        "fetch_openml",
        "read_csv",
        "to_pickle",
        "save_model",
        "FunctionTransformer",
        "make_scorer",
        "export_graphviz",
        "DMatrix",
        "Booster",
        "Display.savefig",
    ],
)
def test_denied_names(name: str) -> None:
    assert code_policy.denied_name(name)


@pytest.mark.parametrize(
    "name", ["GradientBoostingClassifier", "permutation_importance", "fit_transform", "predict_proba", "accuracy_score"]
)
def test_allowed_names(name: str) -> None:
    assert not code_policy.denied_name(name)


def test_modules_and_parameters() -> None:
    assert code_policy.denied_module("joblib") and code_policy.denied_module("sklearn.utils.parallel")
    assert not code_policy.denied_module("sklearn.ensemble") and not code_policy.denied_module("joblibx")
    assert code_policy.denied_parameters({"f": "/x", "X": [[1]]}) == ["f"]
    assert code_policy.denied_parameters({"param_grid": [{"clf__memory": ["/tmp"]}]}) == ["clf__memory"]
    assert code_policy.denied_parameters({"scoring": "accuracy", "n_jobs": 1}) == []


def test_check_request() -> None:
    safe = SimpleNamespace(modulePath="sklearn.ensemble", class_="RandomForestClassifier", classParameters={})
    code_policy.check_request(safe)
    for body in (
        SimpleNamespace(modulePath="sklearn.datasets", method="dump_svmlight_file", methodParameters={}),
        SimpleNamespace(modulePath="sklearn.preprocessing", class_="FunctionTransformer", classParameters={}),
        SimpleNamespace(modulePath="sklearn.pipeline", class_="Pipeline", classParameters={"memory": "/tmp"}),
        SimpleNamespace(method="fit", methodParameters={"X": 1, "score_func": "$f"}),
    ):
        with pytest.raises(code_policy.PolicyViolation, match=code_policy.CODE_ROLE_NEEDED):
            code_policy.check_request(body)


def test_refused_values() -> None:
    assert code_policy.refused_value(eval) is not None
    assert code_policy.refused_value(os) == "a module"
    assert code_policy.refused_value([1, 2]) is None and code_policy.refused_value("eval") is None
    assert code_policy.is_private("_index") and code_policy.is_private("__init__")
    assert not code_policy.is_private("best_estimator_")
