"""AutoKeras through the real server on scikit-learn's 8x8 digits: the seed's Appendix B flow with a
trial stopped at its time or memory limit (the search goes on, the best model is kept), the trial table,
reloading the saved model in other workers, ONNX export, and automl/autokeras on a table of pixel columns.
The trial limits themselves (time and memory, in a real forked child) are checked directly on
trial_process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from automl_orchestra.engines.keras import trial_process
from automl_orchestra.engines.keras.autokeras import architecture_name, numeric_labels
from tests.api.helpers import content, post, run
from tests.conftest import ServerHandle, launch

DIGITS_CODE = """
import numpy as np
from sklearn.datasets import load_digits
digits = load_digits()
order = np.random.RandomState(0).permutation(len(digits.target))[:400]
images, labels = digits.images[order].astype("float32"), digits.target[order]
response = {"train_images": images[:300], "train_labels": labels[:300],
            "test_images": images[300:], "test_labels": labels[300:]}
"""

TABLE_CODE = """
import pandas as pd
from sklearn.datasets import load_digits
digits = load_digits(as_frame=True)
response = digits.frame.sample(n=300, random_state=0).reset_index(drop=True)
"""


@pytest.fixture(scope="module")
def ak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = launch(tmp_path_factory.mktemp("autokeras"))
    with handle.client(timeout=120) as http:
        run(handle, http, "/function/python", {"name": "digits", "code": DIGITS_CODE})
    yield handle
    handle.stop()


def two_trial_classifier(name: str, trial_timeout: float) -> dict:
    """A model/autokeras body: AutoKeras' own ImageClassifier, whose trial 1 is a small CNN and trial 2 a
    ResNet50 that upscales the 8x8 images to ImageNet size."""
    parameters = {"overwrite": True, "max_trials": 2, "seed": 1, "trialTimeout": trial_timeout}
    return {
        "name": name,
        "modulePath": "autokeras.tasks.image",
        "class": "ImageClassifier",
        "classParameters": parameters,
    }


def test_appendix_b_flow_keeps_the_best_model_when_a_trial_hits_a_limit(ak_server: ServerHandle) -> None:
    with ak_server.client(timeout=120) as http:
        # AutoKeras' own ImageClassifier: trial 1 is a small CNN, trial 2 a ResNet50 that upscales the 8x8
        # images to ImageNet size: it cannot finish within its 15 s, and on an idle machine it reaches the
        # step's 4 GB memory limit even sooner. Either way it is stopped and the search goes on.
        assert run(ak_server, http, "/model/autokeras", two_trial_classifier("ak", 15))["maxTrials"] == 2
        fit = {
            "name": "ak_fit",
            "modelName": "ak",
            "parentName": "ak",
            "method": "fit",
            "methodParameters": {
                "x": "$digits.train_images",
                "y": "$digits.train_labels",
                "epochs": 2,
                "validation_split": 0.2,
            },
        }
        started = time.monotonic()
        trained = run(ak_server, http, "/train/autokeras", fit)
        assert time.monotonic() - started < 15 + 90  # the stopped trial did not hold the search up
        assert trained["bestTrial"] == 1 and trained["trialsCompleted"] == 1 and trained["trialsFailed"] == 1
        board = content(http, "/dataset/leaderboard/ak_fit_leaderboard")[1:]
        best, stopped = board
        assert best["best"] and best["status"] == "completed" and best["architecture"] == "vanilla"
        assert best["epochs"] == 2 and len(json.loads(best["history"])) == 2 and best["parameterCount"] > 1000
        assert best["score"] == pytest.approx(min(epoch["val_loss"] for epoch in json.loads(best["history"])))
        assert stopped["status"] == "failed" and stopped["reason"].split(":")[0] in ("time limit", "memory limit")
        assert stopped["architecture"] == "resnet resnet50" and stopped["seconds"] < 30
        assert json.loads(stopped["hyperparameters"])["image_block_1/res_net_block_1/imagenet_size"] is True

        # predict / evaluate / explore load the saved model in other workers (train ran in a forked child)
        test = {"x": "$digits.test_images", "y": "$digits.test_labels"}
        evaluate = {"name": "ak_eval", "parentName": "ak_fit", "method": "evaluate", "methodParameters": test}
        scores = run(ak_server, http, "/evaluate/autokeras", evaluate)["metrics"]
        assert set(scores) == {"loss", "accuracy"} and 0 <= scores["accuracy"] <= 1
        predict = {"name": "ak_pred", "parentName": "ak_fit", "methodParameters": {"x": "$digits.test_images"}}
        run(ak_server, http, "/predict/autokeras", predict)
        predicted = content(http, "/predict/autokeras/ak_pred", limit=100)[1:]
        assert len(predicted) == 100 and all(isinstance(label, int) and 0 <= label <= 9 for label in predicted)
        summary = {"name": "ak_summary", "parentName": "ak_fit", "method": "summary"}
        run(ak_server, http, "/explore/autokeras", summary)
        explored = content(http, "/explore/autokeras/ak_summary")[1]
        assert (
            explored["bestTrial"] == 1 and len(explored["trials"]) == 2 and "Total params" in explored["architecture"]
        )
        export = {"name": "ak_export", "parentName": "ak_fit", "method": "export"}
        run(ak_server, http, "/explore/autokeras", export)
        files = {item["name"] for item in http.get("/explore/autokeras/ak_export/artifacts").json()["result"]}
        assert {"model.keras", "model.onnx"} <= files
        trained_files = {item["name"] for item in http.get("/train/autokeras/ak_fit/artifacts").json()["result"]}
        assert {"model.keras", "pipeline.json", "trials.json"} <= trained_files
        assert not any(name.endswith((".joblib", ".pkl")) for name in trained_files)


def test_a_cancelled_search_ends_with_the_best_model_so_far(ak_server: ServerHandle) -> None:
    with ak_server.client(timeout=120) as http:
        # Trial 1 (a small CNN) completes; the cancel arrives while trial 2 (the ResNet50) runs, with a time
        # and memory allowance it will not reach in the few seconds before the cancel.
        run(ak_server, http, "/model/autokeras", two_trial_classifier("ak_stop", 300))
        fit = {
            "name": "ak_stop_fit",
            "parentName": "ak_stop",
            "method": "fit",
            "methodParameters": {"x": "$digits.train_images", "y": "$digits.train_labels", "epochs": 2},
            "limits": {"memoryMb": 12000, "timeoutS": 600},
        }
        post(http, "/train/autokeras", fit)
        deadline = time.monotonic() + 240
        while not _progress(http, "ak_stop_fit").startswith("trial 2"):
            assert time.monotonic() < deadline, "trial 2 never started"
            time.sleep(0.2)
        # the trial table is on the step while it runs (AMLA-style instrumentation, before the leaderboard)
        first, second = http.get("/steps/ak_stop_fit").json()["result"]["progress"]["detail"]["trials"]
        assert first["status"] == "completed" and first["epochs"] == 2 and first["parameterCount"] > 1000
        assert second["status"] == "running" and second["architecture"] == "resnet resnet50"
        post(http, "/steps/ak_stop_fit/cancel", {}, expect=200)
        document = ak_server.wait("ak_stop_fit", timeout=120)
        assert document["status"] == "finished", document  # stopped, not killed: it kept what it had
        assert document["stopped"].startswith("cancelled by request") and document["bestTrial"] == 1
        assert document["trialsCompleted"] == 1 and document["trialsFailed"] == 1
        best, stopped = content(http, "/dataset/leaderboard/ak_stop_fit_leaderboard")[1:]
        assert best["status"] == "completed" and stopped["reason"] == trial_process.CANCELLED
        predict = {
            "name": "ak_stop_pred",
            "parentName": "ak_stop_fit",
            "methodParameters": {"x": "$digits.test_images"},
        }
        run(ak_server, http, "/predict/autokeras", predict)  # the kept model is usable
        assert len(content(http, "/predict/autokeras/ak_stop_pred", limit=100)[1:]) == 100


def _progress(http: httpx.Client, name: str) -> str:
    document = http.get(f"/steps/{name}").json()["result"]
    assert document["status"] in ("pending", "running"), document
    return str((document.get("progress") or {}).get("message") or "")


def test_automl_on_a_table_of_pixel_columns(ak_server: ServerHandle) -> None:
    with ak_server.client(timeout=120) as http:
        run(ak_server, http, "/function/python", {"name": "digits_table", "code": TABLE_CODE})
        body = {
            "name": "ak_auto",
            "parentName": "digits_table",
            "target": "target",
            "imageShape": [8, 8],
            "maxTrials": 100,  # the budget decides
            "epochs": 2,
            "batchSize": 16,
            "timeBudget": 60,
            "limits": {"timeoutS": 240},
        }
        document = run(ak_server, http, "/automl/autokeras", body)
        assert document["input"] == "image" and 1 <= document["trialsCompleted"] < 100
        assert document["batchSize"] == 16  # the request's, not the image default
        # the search stopped in time to retrain the best architecture on the training and validation rows,
        # and that model is kept
        assert document["refit"]["status"] == "used" and document["refit"]["rows"] == 300, json.dumps(document["refit"])
        assert document["refit"]["epochs"] in (1, 2) and document["searchSeconds"] <= 60
        board = content(http, "/dataset/leaderboard/ak_auto_leaderboard")[1:]
        first = next(row for row in board if row["trial"] == 1)
        assert first["architecture"] == "cnn 2x2"  # the small-image start: two blocks of two layers
        assert json.loads(first["hyperparameters"])["image_block_1/conv_block_1/filters_1_1"] == 64
        # the searched model takes the same table (target column included): it picks its pixel columns
        predict = {"name": "ak_auto_pred", "parentName": "ak_auto", "methodParameters": {"x": "$digits_table"}}
        run(ak_server, http, "/predict/autokeras", predict)
        assert len(content(http, "/predict/autokeras/ak_auto_pred", limit=100)[1:]) == 100
        post(http, "/automl/autokeras", {**body, "name": "ak_bad", "imageShape": [8]}, expect=422)
        wrong = {**body, "name": "ak_wrong", "imageShape": [7, 7]}
        failed = run(ak_server, http, "/automl/autokeras", wrong, status="failed")
        assert "does not hold the 64 feature columns" in failed["error"]["reason"]


def test_a_trial_is_stopped_at_its_time_limit_and_before_the_step_memory_limit(tmp_path: Path) -> None:
    slow = trial_process.run_trial(_sleeps, trial_process.TrialLimits(1.0, 100_000), tmp_path / "slow", 1, _ignore)
    assert slow.status == "failed" and slow.reason.startswith("time limit") and slow.seconds < 5
    asked = time.monotonic() + 0.5
    limits = trial_process.TrialLimits(60.0, 100_000)
    cancelled = trial_process.run_trial(
        _sleeps, limits, tmp_path / "cancelled", 1, _ignore, lambda: time.monotonic() > asked
    )
    assert cancelled.reason == trial_process.CANCELLED and cancelled.seconds < 5
    # A forked child's RSS counts the pages it shares with this process: the tree starts at twice this one.
    limits = trial_process.TrialLimits(60.0, 2 * trial_process._tree_mb() + 600)
    events: list[dict] = []
    greedy = trial_process.run_trial(_allocates, limits, tmp_path / "greedy", 1, events.append)
    assert greedy.status == "failed" and greedy.reason.startswith("memory limit") and greedy.seconds < 30
    assert greedy.peak_memory_mb > 300 and events[-1]["allocatedMb"] >= 150
    fine = trial_process.run_trial(_answers, limits, tmp_path / "fine", 1, _ignore)
    assert fine.ok and fine.result == {"answer": 42}
    broken = trial_process.run_trial(_raises, limits, tmp_path / "broken", 1, _ignore)
    assert broken.status == "failed" and broken.reason == "ValueError: bad trial" and "ValueError" in broken.traceback


def test_labels_and_names() -> None:
    assert numeric_labels(np.array(["7", "1"])).tolist() == [7, 1]
    assert numeric_labels(np.array(["cat", "dog"])).tolist() == ["cat", "dog"]
    assert architecture_name({"image_block_1/block_type": "resnet", "x/version": "resnet50"}) == "resnet resnet50"
    assert architecture_name({"structured_data_block_1/dense_block_1/num_layers": 2}) == "mlp 2"


def _sleeps(emit: trial_process.Emit) -> dict:
    time.sleep(60)
    return {}


def _allocates(emit: trial_process.Emit) -> dict:
    blocks = []
    for step in range(200):  # up to 10 GB, 50 MB at a time: the trial must be stopped long before
        blocks.append(np.ones(50 * 2**20 // 8))
        emit({"allocatedMb": 50 * (step + 1)})
        time.sleep(0.02)
    return {}


def _answers(emit: trial_process.Emit) -> dict:
    return {"answer": 42}


def _raises(emit: trial_process.Emit) -> dict:
    raise ValueError("bad trial")


def _ignore(event: dict) -> None:
    pass


def test_the_seed_class_names_tune_and_builder(ak_server: ServerHandle) -> None:
    """Section 3.1.8's ModelAutokeras, TuneAutokeras (AutoKeras tunes while it trains: the same search),
    TrainingAutokeras and BuilderAutokeras (``builder/autokeras``)."""
    from automl_orchestra.client import BuilderAutokeras, ModelAutokeras, TrainingAutokeras, TuneAutokeras

    url = ak_server.url
    assert TrainingAutokeras.service == "train"
    one_trial = {"overwrite": True, "max_trials": 1, "seed": 1}
    ModelAutokeras(url).create_model_sync("ak_tune_model", "autokeras", "ImageClassifier", one_trial)
    fit = {"x": "$digits.train_images", "y": "$digits.train_labels", "epochs": 1, "validation_split": 0.2}
    tuned = TuneAutokeras(url).create_tune_sync("ak_tuned", "ak_tune_model", "ak_tune_model", "fit", fit)
    assert tuned["service"] == "tune" and tuned["trialsCompleted"] == 1 and tuned["bestTrial"] == 1
    assert len(TuneAutokeras(url).search_content("ak_tuned")) == 2  # metadata, the model's summary
    with ak_server.client() as http:
        assert len(content(http, "/dataset/leaderboard/ak_tuned_leaderboard")[1:]) == 1

    code = "\n".join(
        [
            "open('notes.txt', 'w').write(keras.backend.backend())",
            "response = {'autokeras': autokeras.__version__, 'ak': ak is autokeras, 'numpy': np.__name__}",
        ]
    )
    built = BuilderAutokeras(url).run_autokeras_sync(name="ak_builder", code=code)
    assert built["files"] == ["notes.txt"]
    assert BuilderAutokeras(url).search_content("ak_builder")[1] == {"autokeras": "3.0.0", "ak": True, "numpy": "numpy"}
    assert BuilderAutokeras(url).search_report("notes.txt", "ak_builder") == "torch"
