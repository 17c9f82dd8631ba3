"""A version of every engine family, trained small, registered and served by real serving workers: FLAML,
TPOT, H2O (a MOJO, and a model without one scored in the serving worker's own JVM), AutoGluon, AutoKeras
(on a table and on images), Keras, NAS networks (on a table and on images), the time-series pipeline (its
long series table in, one answer per series out) and the best model of automl/compare. PyCaret, in its own
environment, is in test_pycaret.py; scikit-learn is test_serving.py's.

Each answer is checked for what it must be: one prediction per row, labels among the classes, probabilities
that sum to 1 and agree with the labels, and the step-based predict of the same rows where that is cheap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, load_iris

from tests.api.helpers import assert_classified, content, run, upload_digits
from tests.api.test_models import FEATURES, SPECIES, make_iris, register
from tests.conftest import ServerHandle, launch
from tests.engines.test_h2o import java_processes
from tests.engines.test_keras import CNN_LAYERS, DIGITS_CODE
from tests.nas.test_train_onnx import CNN
from tests.ts_data import write_long_csv

IRIS = load_iris()
RECORDS = [dict(zip(FEATURES, map(float, row), strict=True)) for row in IRIS.data]
TRUTH = np.asarray(SPECIES)[IRIS.target]
# One flower of each species.
THREE = [RECORDS[0], RECORDS[50], RECORDS[100]]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server of its own with one serving worker per environment (each version loads once; loading one
    that starts an H2O JVM has the default load timeout); the iris steps ``mr_*``."""
    handle = launch(tmp_path_factory.mktemp("serving-engines"), ORCHESTRA_SERVING_WORKERS="1")
    try:
        make_iris(handle, tmp_path_factory.mktemp("iris"))
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def api(engines: ServerHandle) -> Iterator[httpx.Client]:
    with engines.client(timeout=240) as client:
        yield client


@pytest.fixture(scope="module")
def digit_arrays(engines: ServerHandle, api: httpx.Client) -> str:
    """The step ``se_digits``: 300 training and 100 test 8x8 digit images with their labels (test_keras.py's)."""
    run(engines, api, "/function/python", {"name": "se_digits", "code": DIGITS_CODE})
    return "se_digits"


def digit_test_images(count: int) -> np.ndarray:
    """DIGITS_CODE's first ``count`` test images, as the step holds them."""
    images = (load_digits().images / 16.0).astype("float32")
    return images[np.random.RandomState(0).permutation(len(images))[300 : 300 + count]]


def served(api: httpx.Client, model: str, body: Any, expect: int = 200, path: str = "predict") -> dict[str, Any]:
    answer = api.post(f"/models/{model}/{path}", json=body)
    assert answer.status_code == expect, answer.text
    document: dict[str, Any] = answer.json()
    return document["result"] if expect == 200 else document["error"]


def infer(engines: ServerHandle, model: str, request: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=engines.url, timeout=240) as root:
        answer = root.post(f"/v2/models/{model}/infer", json=request)
    assert answer.status_code == 200, answer.text
    return {output["name"]: output for output in answer.json()["outputs"]}


def columns_tensors(records: list[dict[str, Any]]) -> dict[str, Any]:
    """An Open Inference Protocol request with one FP64 input per column."""
    names = list(records[0])
    inputs = [{"name": n, "shape": [len(records)], "datatype": "FP64", "data": [r[n] for r in records]} for n in names]
    return {"inputs": inputs}


def accuracy(predictions: list[Any], truth: Any) -> float:
    return float(np.mean(np.asarray(predictions).astype(str) == np.asarray(truth).astype(str)))


def step_predictions(
    engines: ServerHandle, api: httpx.Client, tool: str, parent: str, table: str, argument: str = "X"
) -> list[Any]:
    """The step-based predict of ``parent`` on the table step ``table`` (``predict/{tool}``)."""
    name = f"{parent}_pred"
    body = {"name": name, "parentName": parent, "methodParameters": {argument: f"${table}"}}
    run(engines, api, f"/predict/{tool}", body)
    rows = [row for skip in (0, 100) for row in content(api, f"/predict/{tool}/{name}", skip=skip, limit=100)[1:]]
    return [row["prediction"] if isinstance(row, dict) else row for row in rows]


def automl(engines: ServerHandle, api: httpx.Client, tool: str, name: str, **body: Any) -> dict[str, Any]:
    """``automl/{tool}`` on the iris table, classifying species (seed 1)."""
    request = {"name": name, "parentName": "mr_iris", "target": "species", "task": "classification", "seed": 1}
    return run(engines, api, f"/automl/{tool}", {**request, **body})


# ----- tabular AutoML ---------------------------------------------------------------------------------


def test_flaml(engines: ServerHandle, api: httpx.Client) -> None:
    automl(engines, api, "flaml", "se_flaml", timeBudget=5, options={"estimator_list": ["lgbm", "rf"]})
    assert register(api, "se_flaml", "se_flaml")["result"]["engine"] == "flaml"
    result = served(api, "se_flaml", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)
    assert accuracy(result["predictions"], TRUTH) > 0.9
    assert result["predictions"] == step_predictions(engines, api, "flaml", "se_flaml", "mr_X")
    outputs = infer(engines, "se_flaml", columns_tensors(THREE))
    assert outputs["predict"]["data"] == result["predictions"][::50]
    assert outputs["predict_proba"]["shape"] == [3, 3] and outputs["predict_proba"]["parameters"]["classes"] == SPECIES


def test_tpot(engines: ServerHandle, api: httpx.Client) -> None:
    body = {"timeBudget": 12, "generations": 1, "populationSize": 4, "cv": 3}
    automl(engines, api, "tpot", "se_tpot", **body)
    assert register(api, "se_tpot", "se_tpot")["result"]["engine"] == "tpot"
    result = served(api, "se_tpot", {"records": RECORDS})
    assert_classified(result, 150, SPECIES, agree=0.95)
    assert accuracy(result["predictions"], TRUTH) > 0.9
    assert result["predictions"] == step_predictions(engines, api, "tpot", "se_tpot", "mr_X")
    assert served(api, "se_tpot", {"record": RECORDS[0]})["predictions"] == ["setosa"]


def test_h2o_automl_scores_by_its_mojo(engines: ServerHandle, api: httpx.Client) -> None:
    body = {"timeBudget": 20, "cv": 3, "options": {"include_algos": ["GLM", "GBM"]}}
    document = automl(engines, api, "h2o", "se_h2o", **body)
    assert document["mojo"] == "h2o/model.zip"
    register(api, "se_h2o", "se_h2o")
    result = served(api, "se_h2o", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)
    assert accuracy(result["predictions"], TRUTH) > 0.8
    assert result["predictions"] == step_predictions(engines, api, "h2o", "se_h2o", "mr_X")


def test_h2o_without_mojo_is_scored_in_the_serving_workers_jvm(engines: ServerHandle, api: httpx.Client) -> None:
    """Naive Bayes has no MOJO: loading the version starts the serving worker's own JVM and loads the binary
    into it once (a step would start a JVM per call); the JVM stays for the next requests."""
    model = {"name": "se_nb", "modulePath": "h2o.estimators", "class": "H2ONaiveBayesEstimator"}
    run(engines, api, "/model/h2o", model)
    fit = {"x": FEATURES, "y": "species", "training_frame": "$mr_iris"}
    trained = run(engines, api, "/train/h2o", {"name": "se_nb_fit", "parentName": "se_nb", "methodParameters": fit})
    assert trained["mojo"] is None and "no MOJO export" in trained["mojoMissing"]
    register(api, "se_h2o_nb", "se_nb_fit")
    first = served(api, "se_h2o_nb", {"records": RECORDS})
    assert_classified(first, 150, SPECIES)
    assert accuracy(first["predictions"], TRUTH) > 0.9
    (jvm,) = java_processes("h2o-scoring-")  # the serving worker's JVM, in its temporary folder
    again = served(api, "se_h2o_nb", {"records": THREE})
    assert again["predictions"] == first["predictions"][::50]
    assert java_processes("h2o-scoring-") == [jvm]  # the same JVM answered, none was started for the request


def test_autogluon(engines: ServerHandle, api: httpx.Client) -> None:
    automl(engines, api, "autogluon", "se_ag", timeBudget=10)
    assert register(api, "se_ag", "se_ag")["result"]["engine"] == "autogluon"
    result = served(api, "se_ag", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)
    assert accuracy(result["predictions"], TRUTH) > 0.9
    outputs = infer(engines, "se_ag", columns_tensors(THREE))
    assert outputs["predict"]["data"] == result["predictions"][::50]
    assert np.allclose(
        np.reshape(outputs["predict_proba"]["data"], (3, 3)), np.asarray(result["probabilities"])[::50], atol=1e-6
    )


def test_the_best_model_of_a_comparison(engines: ServerHandle, api: httpx.Client) -> None:
    body = {
        "name": "se_cmp",
        "parentName": "mr_iris",
        "target": "species",
        "task": "classification",
        "timeBudget": 5,
        "engines": ["flaml"],
        "options": {"flaml": {"estimator_list": ["lgbm"]}},
    }
    run(engines, api, "/automl/compare", body)
    version = register(api, "se_cmp", "se_cmp")["result"]
    assert version["engine"] == "flaml" and "compare.json" in version["files"]
    result = served(api, "se_cmp", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)
    assert accuracy(result["predictions"], TRUTH) > 0.9


# ----- neural networks --------------------------------------------------------------------------------


def test_autokeras_on_a_table(engines: ServerHandle, api: httpx.Client) -> None:
    body = {
        "timeBudget": 40,
        "maxTrials": 1,
        "epochs": 10,
        "batchSize": 16,
        "refit": False,
        "limits": {"timeoutS": 240},
    }
    document = automl(engines, api, "autokeras", "se_ak", **body)
    assert document["input"] == "structured"
    version = register(api, "se_ak", "se_ak")["result"]
    assert [column["name"] for column in version["signature"]["inputs"]] == FEATURES
    result = served(api, "se_ak", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)  # the labels are the argmax of the head's softmax
    predicted = step_predictions(engines, api, "autokeras", "se_ak", "mr_X", argument="x")
    assert result["predictions"] == predicted


def test_autokeras_on_images(engines: ServerHandle, api: httpx.Client, digit_arrays: str) -> None:
    """AutoKeras' ImageClassifier searched on arrays: each row is an image's 64 values, the labels those of the
    step-based predict, the probabilities the softmax head's over the ten digits."""
    params = {"overwrite": True, "max_trials": 1, "seed": 1}
    model = {"modulePath": "autokeras.tasks.image", "class": "ImageClassifier", "classParameters": params}
    run(engines, api, "/model/autokeras", {"name": "se_akimg", **model})
    fit = {"x": f"${digit_arrays}.train_images", "y": f"${digit_arrays}.train_labels", "epochs": 2}
    run(engines, api, "/train/autokeras", {"name": "se_akimg_fit", "parentName": "se_akimg", "methodParameters": fit})
    version = register(api, "se_ak_images", "se_akimg_fit")["result"]
    assert version["signature"]["inputs"] is None
    predict = {
        "name": "se_akimg_pred",
        "parentName": "se_akimg_fit",
        "methodParameters": {"x": f"${digit_arrays}.test_images"},
    }
    run(engines, api, "/predict/autokeras", predict)
    expected = content(api, "/predict/autokeras/se_akimg_pred", limit=20)[1:]
    records = [{f"p{i}": float(v) for i, v in enumerate(image.ravel())} for image in digit_test_images(20)]
    result = served(api, "se_ak_images", {"records": records})
    assert_classified(result, 20, list(range(10)))
    assert result["predictions"] == expected


def test_keras_takes_its_input_tensor(engines: ServerHandle, api: httpx.Client, digit_arrays: str) -> None:
    """A hand-built CNN on 8x8 digits: rows of 64 values (records, or an inference tensor [rows, 8, 8]) answer
    the model's raw outputs, those of the step-based predict."""
    layers = {"layers": CNN_LAYERS}
    run(
        engines,
        api,
        "/model/keras",
        {"name": "se_cnn", "modulePath": "keras", "class": "Sequential", "classParameters": layers},
    )
    compiled = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    run(
        engines,
        api,
        "/train/keras",
        {"name": "se_cnn_c", "parentName": "se_cnn", "method": "compile", "methodParameters": compiled},
    )
    fit = {"x": f"${digit_arrays}.train_images", "y": f"${digit_arrays}.train_labels", "epochs": 3}
    run(
        engines,
        api,
        "/train/keras",
        {"name": "se_cnn_fit", "parentName": "se_cnn_c", "method": "fit", "methodParameters": fit},
    )
    version = register(api, "se_keras", "se_cnn_fit")["result"]
    assert version["engine"] == "keras" and version["signature"]["inputs"] is None
    predict = {
        "name": "se_cnn_pred",
        "parentName": "se_cnn_fit",
        "methodParameters": {"x": f"${digit_arrays}.test_images"},
    }
    run(engines, api, "/predict/keras", predict)
    expected = np.asarray(content(api, "/predict/keras/se_cnn_pred", limit=5)[1:])

    images = digit_test_images(5)
    records = [{f"p{i}": float(v) for i, v in enumerate(image.ravel())} for image in images]
    result = served(api, "se_keras", {"records": records})
    assert result["task"] is None and result["classes"] is None and result["probabilities"] is None
    outputs = np.asarray(result["predictions"])
    assert outputs.shape == (5, 10) and np.allclose(outputs, expected, atol=1e-5)
    tensor = {"inputs": [{"name": "x", "shape": [5, 8, 8], "datatype": "FP32", "data": images.tolist()}]}
    by_tensor = infer(engines, "se_keras", tensor)["predict"]
    assert by_tensor["shape"] == [5, 10] and np.allclose(np.reshape(by_tensor["data"], (5, 10)), expected, atol=1e-5)
    error = served(api, "se_keras", {"records": [{"a": 1.0, "b": 2.0}]}, expect=422)["message"]
    assert "64 numbers per row" in error and "[8, 8]" in error
    probabilities = api.post("/models/se_keras/predict", params={"probabilities": "true"}, json={"records": records})
    assert probabilities.status_code == 422 and "not a classifier" in probabilities.text


NAS_MLP = {
    "specVersion": 1,
    "input": {"shape": [4]},
    "output": {"classes": 3},
    "layers": [{"type": "dense", "units": 16}],
    "control": {"epochs": 30, "batchSize": 16, "learningRate": 0.01},
}


def test_nas_networks_on_a_table_and_on_images(
    engines: ServerHandle, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A network trained on the iris table takes its columns (standardised as in training); one trained on
    digit images takes the 64 values of an image; a network a constraint rejected is refused with why."""
    run(engines, api, "/nas/train", {"name": "se_net", "spec": NAS_MLP, "data": "$mr_iris", "target": "species"})
    version = register(api, "se_nas", "se_net")["result"]
    assert [column["name"] for column in version["signature"]["inputs"]] == FEATURES
    result = served(api, "se_nas", {"records": RECORDS})
    assert_classified(result, 150, SPECIES)
    assert accuracy(result["predictions"], TRUTH) > 0.8

    upload_digits(engines, api, tmp_path_factory.mktemp("digits"))
    run(engines, api, "/nas/train", {"name": "se_cnn_net", "spec": CNN, "data": "$digits"})
    register(api, "se_nas_digits", "se_cnn_net")
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    tensor = {"inputs": [{"name": "x", "shape": [200, 1, 8, 8], "datatype": "FP32", "data": images[:200].tolist()}]}
    outputs = infer(engines, "se_nas_digits", tensor)
    labels = outputs["predict"]["data"]
    assert len(labels) == 200 and set(labels) <= {str(d) for d in range(10)}
    assert accuracy(labels, digits.target[:200]) > 0.5
    assert np.allclose(np.reshape(outputs["predict_proba"]["data"], (200, 10)).sum(axis=1), 1.0, atol=1e-5)
    records = [{f"p{i}": float(v) for i, v in enumerate(image.ravel())} for image in images[:3]]
    assert served(api, "se_nas_digits", {"records": records})["predictions"] == labels[:3]

    constraints = {"maxParameters": 10}
    run(
        engines,
        api,
        "/nas/train",
        {"name": "se_big", "spec": NAS_MLP, "data": "$mr_iris", "target": "species", "constraints": constraints},
    )
    register(api, "se_nas_rejected", "se_big")
    for _ in range(2):  # refused at once the second time: the worker remembers
        error = served(api, "se_nas_rejected", {"records": THREE}, expect=422)["message"]
        assert "cannot serve predictions" in error and "rejected before training" in error


# ----- the time-series pipeline -----------------------------------------------------------------------


def test_a_time_series_pipeline_takes_the_long_series_table(
    engines: ServerHandle, api: httpx.Client, tmp_path: Path
) -> None:
    """The seed service's pipeline (tsfresh features + TPOT) registered: the long table of new series (id,
    time, channels) as JSON records gets one answer per series, as the service's own route gives for the
    uploaded file; rows that are neither features nor series are a 422 saying what to send."""
    write_long_csv(tmp_path / "raw.csv", tmp_path / "labels.csv", series=40, length=30)
    truth = write_long_csv(
        tmp_path / "new.csv", tmp_path / "new_labels.csv", series=10, length=30, seed=7, first_id=500
    )
    params = (
        '{"pipeline_id": "se_waves", "extract_features": {"default_fc_parameters": "minimal"},'
        ' "tpot": {"timeBudget": 12, "generations": 1, "population_size": 4, "cv": 3}}'
    )
    files = {
        "raw_data": ("raw.csv", (tmp_path / "raw.csv").read_bytes()),
        "labels": ("labels.csv", (tmp_path / "labels.csv").read_bytes()),
        "params": ("params.yml", params.encode()),
    }
    trained = api.post("/timeseries/train", files=files)
    assert trained.status_code == 200, trained.text
    version = register(api, "se_waves", "ts-se_waves")["result"]
    features = [column["name"] for column in version["signature"]["inputs"]]
    assert features and all("__" in name for name in features)

    series = pd.read_csv(tmp_path / "new.csv")
    result = served(api, "se_waves", {"records": series.to_dict(orient="records")})
    assert result["ids"] == list(range(500, 510)) and result["rows"] == 10
    assert_classified(result, 10, ["sine", "square"], agree=0.9)
    assert sum(p == label for p, label in zip(result["predictions"], truth, strict=True)) >= 8
    with (tmp_path / "new.csv").open("rb") as handle:  # the seed service's route: the uploaded file itself
        by_route = api.post("/timeseries/se_waves/predict", files={"raw_data": ("new.csv", handle)})
    assert by_route.status_code == 200, by_route.text
    assert result["predictions"] == [by_route.json()["result"][str(i)] for i in result["ids"]]

    no_time = series.drop(columns=["time"]).to_dict(orient="records")  # row order is time order
    assert served(api, "se_waves", {"records": no_time})["predictions"] == result["predictions"]
    error = served(api, "se_waves", {"records": [{"id": 1, "time": 0, "z": 1.0}]}, expect=422)["message"]
    assert "missing column(s)" in error and "long series table" in error
