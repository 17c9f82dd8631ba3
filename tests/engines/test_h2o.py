"""automl/h2o and the H2O reflection services for real (a JVM per step, 20 s budgets), models as binary +
MOJO (MOJO scores equal to the binary's in a cluster; the binary alone where H2O has no MOJO), and the JVM's
life: stopped at the end of a step, and killed with the worker when a step is cancelled."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris

from automl_orchestra.engines.h2o.engine import H2OModel, heap_mb
from tests.api.helpers import post, upload
from tests.conftest import ServerHandle
from tests.engines.conftest import Harness


def java_processes(marker: str) -> list[int]:
    """PIDs of live java processes whose command line contains ``marker`` (from the process table)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "java" in command.split(" ")[0] and marker in command and "zombie" not in state:
            found.append(int(entry.name))
    return found


def test_automl_h2o_leaderboard_binary_model_and_predict(harness: Harness) -> None:
    data = load_breast_cancer(as_frame=True).frame
    harness.put("cancer", data)
    started = time.monotonic()
    ran = harness.run(
        "automl",
        "h2o",
        {
            "parentName": "cancer",
            "target": "target",
            "timeBudget": 30,
            "metric": "roc_auc",
            "seed": 1,
            "cv": 3,
            "options": {"include_algos": ["GLM", "GBM"]},  # quick first models even on a busy machine
        },
        name="auto",
        inputs=["cancer"],
        cpus=2,
    )
    assert time.monotonic() - started < 30 + 25  # the budget includes the JVM start (bars: benchmarks/)
    meta = ran.metadata
    assert meta["metric"] == "auc" and meta["bestScore"] > 0.95 and meta["trainRows"] == 569
    assert meta["jvmStartSeconds"] > 0 and 8 <= meta["searchSeconds"] < 30
    assert meta["binary"] == "h2o/model" and (ran.files / "h2o" / "model").is_file()
    assert meta["mojo"] == "h2o/model.zip" and "mojoMissing" not in meta
    assert {"model.zip", "h2o-genmodel.jar"} <= {f.name for f in (ran.files / "h2o").iterdir()}
    board = harness.run_derived(ran, "leaderboard")
    assert board["modelId"].iloc[0] == meta["bestModelId"] and {"auc", "algo", "training_time_ms"} <= set(board)
    assert java_processes(str(ran.ctx.work_dir)) == []  # the step's JVM is gone
    model = ran.load()
    assert isinstance(model, H2OModel) and model.classes == [0, 1] and model.mojo_path() is not None
    predicted = harness.run(  # scored by the MOJO: no cluster
        "predict",
        "h2o",
        {"parentName": "auto", "methodParameters": {"X": "$cancer"}},
        name="pred",
        inputs=["auto", "cancer"],
    ).load()
    assert list(predicted.columns) == ["prediction"]  # one shape for every engine, not the target's name
    accuracy = float((predicted["prediction"].astype(str) == data["target"].astype(str)).mean())
    assert accuracy > 0.9, predicted["prediction"].value_counts()


def test_h2o_estimator_by_reflection_mojo_scores_as_the_binary(harness: Harness, tmp_path: Path) -> None:
    iris = load_iris(as_frame=True)
    frame = iris.frame.assign(
        species=pd.Categorical.from_codes(iris.target, iris.target_names).astype(str),
        # a text (enum) feature with missing values: the MOJO reads it back from CSV
        petal=np.where(iris.frame["petal length (cm)"] > 4.5, "long", "short").astype(object),
    )
    frame.loc[::7, "petal"] = None
    harness.put("iris", frame.drop(columns=["target"]))
    harness.run(
        "model",
        "h2o",
        {
            "modulePath": "h2o.estimators",
            "class": "H2OGradientBoostingEstimator",
            "classParameters": {"ntrees": 10, "seed": 1},
        },
        name="gbm",
    )
    features = [*iris.feature_names, "petal"]
    trained = harness.run(
        "train",
        "h2o",
        {"parentName": "gbm", "methodParameters": {"x": features, "y": "species", "training_frame": "$iris"}},
        name="gbm_fit",
        inputs=["gbm", "iris"],
        cpus=2,
    )
    assert trained.metadata["algo"] == "gbm" and trained.metadata["performance"]["logloss"] < 0.5
    assert trained.metadata["mojo"] == "h2o/model.zip" and (trained.files / "h2o" / "h2o-genmodel.jar").is_file()
    model = trained.load()
    by_mojo = model.predict_proba(frame)
    # The same model from its binary alone: reloaded into a short-lived JVM.
    binary_only = tmp_path / "binary_only"
    shutil.copytree(trained.files, binary_only, ignore=shutil.ignore_patterns("model.zip"))
    model.directory = str(binary_only)
    assert model.mojo_path() is None
    with model.scoring_session():
        assert java_processes("h2o-scoring-")  # the binary needs a cluster
        by_binary = model.predict_proba(frame)
        labels = model.predict(frame)
    assert java_processes("h2o-scoring-") == []
    assert by_mojo.shape == (150, 3) and np.abs(by_mojo - by_binary).max() < 1e-6
    assert list(labels[:1]) == ["setosa"] and set(labels) == {"setosa", "versicolor", "virginica"}
    scored = harness.run(
        "evaluate",
        "h2o",
        {"parentName": "gbm_fit", "methodParameters": {"X": "$iris", "y": "$iris.species"}},
        name="gbm_score",
        inputs=["gbm_fit", "iris"],
    )
    assert scored.result.metrics["score"] > 0.9


def test_a_model_without_mojo_keeps_its_binary_and_scores_in_a_jvm(harness: Harness) -> None:
    data = load_breast_cancer(as_frame=True).frame
    harness.put("cancer", data)
    harness.run("model", "h2o", {"modulePath": "h2o.estimators", "class": "H2ONaiveBayesEstimator"}, name="nb")
    trained = harness.run(
        "train",
        "h2o",
        {"parentName": "nb", "methodParameters": {"y": "target", "training_frame": "$cancer"}},
        name="nb_fit",
        inputs=["nb", "cancer"],
    )
    meta = trained.metadata
    assert meta["mojo"] is None and "no MOJO export" in meta["mojoMissing"] and "naivebayes" in meta["mojoMissing"]
    assert sorted(f.name for f in (trained.files / "h2o").iterdir()) == ["model"]
    predicted = harness.run(  # the predict step starts its own JVM for the binary
        "predict",
        "h2o",
        {"parentName": "nb_fit", "methodParameters": {"X": "$cancer"}},
        name="nb_pred",
        inputs=["nb_fit", "cancer"],
    ).load()
    accuracy = float((predicted["prediction"].astype(str) == data["target"].astype(str)).mean())
    assert accuracy > 0.85, predicted["prediction"].value_counts()
    assert java_processes(str(harness.root / "work")) == []  # the steps' JVMs are gone


def test_heap_follows_the_memory_allowance() -> None:
    assert heap_mb(4096) == int(4096 * 0.55) and heap_mb(256) == 512


def test_cancelling_an_h2o_step_leaves_no_jvm(fresh_server: ServerHandle, tmp_path: Path) -> None:
    csv = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    server = fresh_server
    with server.client() as http:
        upload(http, "jvm_data", csv)
        body = {"name": "jvm_h2o", "parentName": "jvm_data", "target": "target", "timeBudget": 120}
        post(http, "/automl/h2o", body)
        marker = "/jvm_h2o/"  # the JVM's -ice_root lies in the step's work directory
        deadline = time.monotonic() + 90
        while not java_processes(marker):
            assert time.monotonic() < deadline, "the step's JVM never started"
            time.sleep(0.5)
        jvms = java_processes(marker)
        assert all(os.getpgid(pid) != os.getpid() for pid in jvms)
        assert http.post("/steps/jvm_h2o/cancel").status_code == 200
        assert server.wait("jvm_h2o", timeout=60)["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while java_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert java_processes(marker) == []
