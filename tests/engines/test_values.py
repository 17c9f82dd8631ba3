"""The builtin serializer: every kind round-trips, files are pickle-free where possible, folders hash stably."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.core.values import load_value, output_hash, save_value


def round_trip(value: object, folder: Path) -> tuple[OutputRef, Any]:
    ref = save_value(value, folder)
    return ref, load_value(ref, folder)


def test_table_keeps_types_and_drops_a_range_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, None, 2.0], "c": ["x", None, "z"], "d": [True, False, True]})
    ref, loaded = round_trip(frame, tmp_path)
    assert ref.kind == "table"
    assert ref.attributes == ["a", "b", "c", "d"]
    assert ref.files == ["data.parquet", "summary.json"]
    pd.testing.assert_frame_equal(loaded, frame)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["shape"] == [3, 4]
    assert summary["dtypes"]["a"] == "int64"


def test_meaningful_index_becomes_a_column_and_the_caller_frame_is_untouched(tmp_path: Path) -> None:
    frame = pd.DataFrame({0: [1.0, 2.0], "index": [3, 4]}, index=pd.Index([10, 20]))
    ref, loaded = round_trip(frame, tmp_path)
    assert ref.attributes == ["_index", "0", "index"]  # the index name "index" was taken by a column
    assert loaded["_index"].tolist() == [10, 20]
    assert list(frame.columns) == [0, "index"]


def test_series_and_mixed_object_columns(tmp_path: Path) -> None:
    ref, loaded = round_trip(pd.Series([1, 2], name=None), tmp_path / "s")
    assert ref.attributes == ["value"] and loaded["value"].tolist() == [1, 2]
    ref, loaded = round_trip(pd.DataFrame({"mixed": [1, "two", None]}), tmp_path / "m")
    assert loaded["mixed"].tolist() == ["1", "two", None]


def test_arrays_without_pickles(tmp_path: Path) -> None:
    ref, loaded = round_trip(np.arange(6).reshape(2, 3), tmp_path / "a")
    assert ref.kind == "array" and isinstance(loaded, np.ndarray) and loaded.shape == (2, 3)
    ref, loaded = round_trip(np.array(["yes", "no"], dtype=object), tmp_path / "labels")
    assert ref.kind == "array" and loaded.tolist() == ["yes", "no"]
    arrays = {"file": np.ones(3), "importances_mean": np.zeros((2, 2))}  # "file" clashes with np.savez
    ref, loaded = round_trip(arrays, tmp_path / "many")
    assert ref.kind == "arrays" and ref.attributes == ["file", "importances_mean"]
    assert isinstance(loaded, dict) and loaded["file"].tolist() == [1.0, 1.0, 1.0]


def test_json_values(tmp_path: Path) -> None:
    value = {"n": np.int64(3), "x": np.float32(0.5), "bad": float("nan"), "flag": np.bool_(True), "l": (1, "a")}
    ref, loaded = round_trip(value, tmp_path / "j")
    assert ref.kind == "json" and ref.attributes == ["n", "x", "bad", "flag", "l"]
    assert loaded == {"n": 3, "x": 0.5, "bad": None, "flag": True, "l": [1, "a"]}
    ref, loaded = round_trip(None, tmp_path / "none")
    assert ref.kind == "json" and loaded is None


def test_objects_are_pickled_with_a_summary(tmp_path: Path) -> None:
    model = LogisticRegression(C=0.5)
    ref, loaded = round_trip(model, tmp_path)
    assert ref.kind == "object" and ref.files == ["model.joblib", "summary.json"]
    assert isinstance(loaded, LogisticRegression) and loaded.C == 0.5
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["type"].endswith("LogisticRegression")
    assert "LogisticRegression(C=0.5)" in summary["repr"]
    assert {"python", "numpy", "scikit-learn"} <= set(summary["libraryVersions"])


def test_existing_files_are_kept_and_listed(tmp_path: Path) -> None:
    (tmp_path / "plot.png").write_bytes(b"png")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "score").write_text("a\tb\n")
    ref = save_value({"plot": "plot.png"}, tmp_path)
    assert ref.files == ["data.json", "files/score", "plot.png"]


def test_file_outputs_load_as_their_path(tmp_path: Path) -> None:
    (tmp_path / "images.zip").write_bytes(b"zip")
    ref = OutputRef(kind="file", prefix="x", files=["images.zip"])
    assert load_value(ref, tmp_path) == str(tmp_path / "images.zip")


def test_output_hash_depends_on_names_and_contents(tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    for folder in (first, second):
        save_value(pd.DataFrame({"a": [1, 2]}), folder)
    assert output_hash(first) == output_hash(second)
    (second / "extra.txt").write_text("x")
    assert output_hash(first) != output_hash(second)


@pytest.mark.parametrize("value", [{"a": 1, 2: "b"}, {1, 2}, b"bytes"])
def test_values_without_json_form_become_objects(tmp_path: Path, value: object) -> None:
    ref, loaded = round_trip(value, tmp_path)
    assert ref.kind == "object" and loaded == value


def test_a_model_pickled_under_its_old_flat_module_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before engines had a folder each, FlamlModel lived in ``engines/flaml.py``: its stored models name
    the module ``automl_orchestra.engines.flaml``, now a package without the class."""
    import automl_orchestra.engines.flaml as old_module
    from automl_orchestra.engines.flaml.engine import FlamlModel

    # Write the pickle the way the old version did: the class found under its old module path.
    monkeypatch.setattr(old_module, "FlamlModel", FlamlModel, raising=False)
    monkeypatch.setattr(FlamlModel, "__module__", "automl_orchestra.engines.flaml")
    ref = save_value(FlamlModel(feature_names=["a", "b"], target_name="y"), tmp_path)
    monkeypatch.undo()
    assert not hasattr(old_module, "FlamlModel")

    loaded = load_value(ref, tmp_path)

    assert type(loaded) is FlamlModel
    assert loaded.feature_names == ["a", "b"] and loaded.target_name == "y"


@pytest.mark.parametrize(
    ("module", "old_name"),
    [
        ("automl_orchestra.engines.h2o.engine", "H2OBlueprint"),
        ("automl_orchestra.engines.autogluon.engine", "AutoGluonBlueprint"),
    ],
)
def test_a_model_spec_pickled_under_its_old_class_name_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, old_name: str
) -> None:
    """``model/h2o`` and ``model/autogluon`` stored an ``H2OBlueprint`` / ``AutoGluonBlueprint``; both are
    one ``ModelSpec`` now, and the old classes are gone from their modules."""
    import dataclasses
    import importlib

    from automl_orchestra.engines.core.model import ModelSpec

    old_module = importlib.import_module(module)
    # Write the pickle the way the old version did: a dataclass of the same fields, under its old name.
    old_class = dataclasses.make_dataclass(
        old_name, [("module_path", str), ("class_name", str), ("kwargs", dict)], namespace={"__module__": module}
    )
    monkeypatch.setattr(old_module, old_name, old_class, raising=False)
    ref = save_value(old_class("h2o.automl", "H2OAutoML", {"max_models": 3}), tmp_path)
    monkeypatch.undo()
    assert not hasattr(old_module, old_name)

    loaded = load_value(ref, tmp_path)

    assert type(loaded) is ModelSpec
    assert loaded == ModelSpec("h2o.automl", "H2OAutoML", {"max_models": 3})


def test_a_pycaret_model_pickled_before_the_shared_base_still_loads(tmp_path: Path) -> None:
    """Before every automl model had one base, ``PycaretModel`` kept its columns as ``features`` (now the
    method that reads them) and had no ``task``."""
    from sklearn.pipeline import Pipeline

    from automl_orchestra.engines.pycaret.engine import PycaretModel

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0], "y": [0, 0, 1, 1]})
    pipeline = Pipeline([("trained_model", LogisticRegression())]).fit(frame[["a", "b"]], frame["y"])
    old = PycaretModel.__new__(PycaretModel)
    old.__dict__.update(
        {"pipeline": pipeline, "features": ["a", "b"], "dtypes": dict(frame[["a", "b"]].dtypes), "target_name": "y"}
    )
    ref = save_value(old, tmp_path)

    loaded = load_value(ref, tmp_path)

    assert loaded.feature_names == ["a", "b"] and loaded.task == "classification"
    assert list(loaded.predict(frame)) == list(pipeline.predict(frame[["a", "b"]]))
    assert loaded.score(frame, frame["y"]) == pipeline.score(frame[["a", "b"]], frame["y"])
    assert repr(loaded) == "PycaretModel(model='LogisticRegression', task='classification', target='y', features=2)"
