"""dataset/timeseries, transform/tsfresh and tpot for real, on small generated series (sine vs square)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.jobs import WorkerPolicy
from automl_orchestra.engines.timeseries.ingest import parse_ts
from automl_orchestra.engines.tpot.engine import TpotModel, _Candidate, choose_winner
from tests.engines.conftest import Harness
from tests.ts_data import write_long_csv, write_ts

MINIMAL = {"default_fc_parameters": "minimal"}


def ingest(harness: Harness, path: Path, name: str) -> dict:
    harness.policy = WorkerPolicy(import_dirs=[str(path.parent)])
    return harness.run("dataset", "timeseries", {"source": {"kind": "path", "path": str(path)}}, name=name).metadata


def test_ts_file_becomes_a_long_table_and_labels(harness: Harness, tmp_path: Path) -> None:
    labels = write_ts(tmp_path / "waves.ts", series=6, length=10)
    harness.policy = WorkerPolicy(import_dirs=[str(tmp_path)])
    ran = harness.run(
        "dataset", "timeseries", {"source": {"kind": "path", "path": str(tmp_path / "waves.ts")}}, name="w"
    )
    assert (
        ran.metadata["format"] == "ts"
        and ran.metadata["series"] == 6
        and ran.metadata["channels"] == ["dim_0", "dim_1"]
    )
    frame = ran.load()
    assert list(frame.columns) == ["id", "time", "dim_0", "dim_1"] and len(frame) == 60
    board = harness.run_derived(ran, "labels")
    assert board["label"].tolist() == labels and board["id"].tolist() == list(range(6))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("@problemName x\n@classLabel true a b\n@data\n1,2,3:a\n1,2:b\n", "line 5: series length 2"),
        ("@problemName x\n@classLabel true a b\n@data\n1,2,3:a\n1,x,3:b\n", "line 5, dimension 0: 'x' is not a number"),
        ("@problemName x\n@classLabel true a b\n@data\n1,2,3:a\n1,2,3:4,5,6:b\n", "line 5: 2 dimension(s)"),
        ("1,2,3\n", "line 1: expected a header line"),
        ("@problemName x\n@bogus 1\n@data\n", "line 2: unknown header @bogus"),
        ("@problemName x\n@classLabel false\n", "no @data line"),
    ],
)
def test_malformed_ts_names_the_line(body: str, message: str) -> None:
    with pytest.raises(StepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_ts(body.splitlines())


def test_malformed_ts_fails_the_step(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / "bad.ts").write_text("@problemName x\n@classLabel true a\n@data\n1,2:a\n1,oops:a\n")
    with pytest.raises(StepError, match="line 5, dimension 0"):
        ingest(harness, tmp_path / "bad.ts", "bad")


def test_tsfresh_and_tpot_pipeline(harness: Harness, tmp_path: Path) -> None:
    labels = write_long_csv(tmp_path / "raw.csv", tmp_path / "labels.csv", series=40, length=30)
    meta = ingest(harness, tmp_path / "raw.csv", "raw")
    assert meta["format"] == "long-csv" and meta["series"] == 40 and meta["channels"] == ["a", "b"]
    harness.run("dataset", "csv", {"source": {"kind": "path", "path": str(tmp_path / "labels.csv")}}, name="labels")

    extracted = harness.run(
        "transform", "tsfresh", {"parentName": "raw", "methodParameters": MINIMAL}, name="feat", inputs=["raw"], cpus=2
    )
    features = extracted.load()
    assert features.columns[0] == "id" and features.shape == (40, 1 + extracted.metadata["features"])
    settings = json.loads((extracted.files / "feature_settings.json").read_text())
    assert set(settings) == {"a", "b"} and "standard_deviation" in settings["a"]

    selected = harness.run(
        "transform",
        "tsfresh",
        {"parentName": "feat", "method": "select_features", "methodParameters": {"y": "$labels"}},
        name="sel",
        inputs=["feat", "labels"],
    )
    chosen = selected.load()
    assert chosen.columns[0] == "id" and chosen.columns[-1] == "label" and chosen["label"].tolist() == labels
    assert 1 <= selected.metadata["features"] < extracted.metadata["features"]
    assert all(name.startswith("a__") for name in chosen.columns[1:-1])  # channel b is noise

    # Prediction-time extraction reproduces exactly the selected features, in the same order.
    write_long_csv(tmp_path / "new.csv", tmp_path / "new_labels.csv", series=10, length=30, seed=5, first_id=100)
    ingest(harness, tmp_path / "new.csv", "new")
    again = harness.run(
        "transform", "tsfresh", {"parentName": "new", "methodParameters": {"featureSettings": "$sel"}},
        name="newfeat", inputs=["new", "sel"],
    ).load()  # fmt: skip
    assert list(again.columns) == list(chosen.columns[:-1]) and again["id"].tolist() == list(range(100, 110))

    started = time.monotonic()
    ran = harness.run(
        "automl",
        "tpot",
        {"parentName": "sel", "target": "label", "timeBudget": 40, "generations": 1, "populationSize": 4, "cv": 3,
         "excludeColumns": ["id"]},
        name="auto", inputs=["sel"], cpus=2,
    )  # fmt: skip
    assert time.monotonic() - started < 40 * 1.05 + 3  # budget plus loading and saving
    assert ran.metadata["bestScore"] >= 0.9 and ran.metadata["columns"]["excluded"] == {
        "id": "listed in excludeColumns"
    }
    board = harness.run_derived(ran, "leaderboard")
    assert {"random_forest", "extra_trees", "tpot"} <= set(board["learner"])  # baselines, then TPOT
    # TPOT's pipelines are scored, or (on a loaded machine, stopped at the budget) its row says why not.
    tpot = board[board["learner"] == "tpot"]
    assert tpot["bestScore"].notna().all() or tpot["status"].str.startswith(("stopped", "skipped")).all()
    assert board["bestScore"].dropna().is_monotonic_decreasing
    assert board.loc[board["source"] == "baseline", "standardError"].notna().all()
    assert ran.metadata["selection"].startswith(ran.metadata["bestLearner"])
    code = (ran.files / "pipeline.py").read_text()
    namespace: dict = {}
    exec(compile(code, "pipeline.py", "exec"), namespace)  # the exported code runs and builds an estimator
    assert hasattr(namespace["pipeline"], "fit")
    model = ran.load()
    assert isinstance(model, TpotModel)
    predicted = harness.run(
        "predict", "tpot", {"parentName": "auto", "methodParameters": {"X": "$newfeat"}}, name="pred",
        inputs=["auto", "newfeat"],
    ).load()  # fmt: skip
    truth = (tmp_path / "new_labels.csv").read_text().split("\n")[1:-1]
    expected = [line.split(",")[1] for line in truth]
    assert (predicted["prediction"] == expected).mean() >= 0.8  # one shape for every engine


def test_tpot_by_reflection(harness: Harness, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    harness.put("X", data.data)
    harness.put("y", data.target.to_frame())
    model = harness.run(
        "model", "tpot",
        {"modulePath": "tpot", "class": "TPOTClassifier",
         "classParameters": {"generations": 1, "population_size": 4, "cv": 3, "max_time_mins": 0.2, "random_state": 1,
                             "search_space": "linear-light"}},
        name="m", cpus=2,
    )  # fmt: skip
    params = model.metadata["estimatorParameters"]
    assert params["n_jobs"] == 2 and model.load().tpotestimator_kwargs["processes"] is False  # threads, in the worker
    trained = harness.run(
        "train", "tpot", {"parentName": "m", "methodParameters": {"X": "$X", "y": "$y"}}, name="t",
        inputs=["m", "X", "y"], cpus=2,
    )  # fmt: skip
    assert "Pipeline" in trained.metadata["pipeline"] and (trained.files / "pipeline.py").exists()
    scored = harness.run(
        "evaluate", "tpot", {"parentName": "t", "methodParameters": {"X": "$X", "y": "$y"}, "metrics": ["accuracy"]},
        name="e", inputs=["t", "X", "y"],
    )  # fmt: skip
    assert scored.result.metrics["accuracy"] > 0.8


def test_tpot_replaces_a_baseline_only_beyond_one_standard_error() -> None:
    def candidate(name: str, score: float, error: float = 0.0) -> _Candidate:
        source = "tpot" if name == "tpot" else "baseline"
        return _Candidate(name, None, score, 1.0, source, standard_error=error)

    forest, trees = candidate("random_forest", 0.90, 0.03), candidate("extra_trees", 0.94, 0.025)
    best, why = choose_winner([forest, trees, candidate("tpot", 0.96)])
    assert best is trees and "within one standard error (0.0250)" in why  # GunPoint: TPOT's 0.96 is noise
    best, why = choose_winner([forest, trees, candidate("tpot", 0.97)])
    assert best.name == "tpot" and why.startswith("tpot: cv 0.9700 beats extra_trees's 0.9400")
    assert choose_winner([candidate("tpot", 0.5)])[0].name == "tpot"  # options.baselines = []
    assert choose_winner([forest, trees])[0] is trees  # TPOT stopped: the best baseline


def test_automl_tpot_one_hot_encodes_text_columns(harness: Harness) -> None:
    frame = pd.DataFrame(
        {
            "colour": ["red", "blue", None, "green"] * 30,
            "size": [1.0, 2.0, 3.0, 4.0] * 30,
            "label": ["warm", "cold", "cold", "cold"] * 30,
        }
    )
    harness.put("colours", frame)
    ran = harness.run(
        "automl", "tpot",
        # 20 s: the 500-tree baseline's bounded CV must finish on a busy machine too (it did not in 10 s at load 6.5).
        {"parentName": "colours", "target": "label", "timeBudget": 20, "cv": 3,
         "options": {"baselines": ["random_forest"]}},
        name="auto_text", inputs=["colours"],
    )  # fmt: skip
    assert ran.metadata["oneHot"] == {"colour": 3} and ran.metadata["bestScore"] == 1.0  # red <=> warm
    model = ran.load()
    unseen = pd.DataFrame({"colour": ["red", "purple", None], "size": [1.0, 1.0, 1.0]})
    assert model.features(unseen).shape == (3, 1 + 3)  # an unseen or missing level is all zeros
    assert model.predict(unseen)[0] == "warm"


def test_automl_tpot_holds_its_budget_when_the_baselines_are_too_slow(harness: Harness) -> None:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=30_000, n_features=30, random_state=0)
    harness.put("large", pd.DataFrame(X, columns=[f"x{i}" for i in range(30)]).assign(label=y))
    started = time.monotonic()
    with pytest.raises(StepError, match="no pipeline finished within the time budget of 10 s"):
        harness.run("automl", "tpot", {"parentName": "large", "target": "label", "timeBudget": 10}, inputs=["large"])
    assert time.monotonic() - started < 10 * 1.05 + 2  # the 500-tree forest's CV was stopped at the deadline
