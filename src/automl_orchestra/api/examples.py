"""Examples for the OpenAPI document: a response example per route, the shared error shape, and a request
body example per step route.

The request examples form one pipeline: every example creates a step of its own name (no two examples share
one), and what an example references is either created by another example or one of the base datasets
(``titanic_train``, ``titanic_test``...). A route's example is the ``example`` of its request model (the
tool's own, or its service family's) unless :data:`REQUESTS` gives the route one: family models are shared
by several tools (``MethodBody`` by every ``train/*``), and each tool's example names its own models and
methods. ``tests/api/test_schemathesis.py`` POSTs every documented example and expects it accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from automl_orchestra.api.errors import CODES

METADATA: dict[str, Any] = {
    "name": "titanic_train",
    "service": "dataset",
    "tool": "csv",
    "status": "finished",
    "finished": True,
    "settled": True,
    "parameters": {"source": {"kind": "url", "url": "https://example.org/train.csv"}, "separator": ","},
    "description": "",
    "createdAt": "2026-11-22T10:00:00+00:00",
    "updatedAt": "2026-11-22T10:00:01+00:00",
    "run": 1,
    "runs": 1,
    "error": None,
    "parents": [],
    "owner": None,
    "output": {"kind": "table", "files": ["data.parquet", "summary.json"]},
    "url": "/api/v1/dataset/csv/titanic_train",
    "metrics": {},
    "fields": ["PassengerId", "Survived", "Pclass"],
    "types": {"PassengerId": "integer", "Survived": "integer", "Pclass": "integer"},
    "rowCount": 891,
}

RUN: dict[str, Any] = {
    "run": 1,
    "id": "3f2a9c0e8b1d4e6f9a7b5c3d1e0f2a4b",
    "status": "finished",
    "attempt": 1,
    "parameters": METADATA["parameters"],
    "createdAt": "2026-11-22T10:00:00+00:00",
    "startedAt": "2026-11-22T10:00:00.020000+00:00",
    "finishedAt": "2026-11-22T10:00:00.410000+00:00",
    "wallS": 0.37,
    "reason": None,
    "exception": None,
    "traceback": None,
    "metrics": {},
    "peakMemoryMb": 182.4,
    "cpuTimeS": 0.35,
    "node": "worker-host-1",
    "cachedFrom": None,
    "fingerprint": None,
}

ERROR: dict[str, Any] = {
    "result": "no step named 'titanic'",
    "error": {"status": 404, "code": "not_found", "message": "no step named 'titanic'"},
}

# A typical message of each error status, for the examples of the OpenAPI document.
ERROR_MESSAGES = {
    400: "the request body is not valid JSON",
    401: "authentication required: send 'Authorization: Bearer <token>'",
    403: "the viewer role may not do this; editor or higher is required",
    404: "no step named 'titanic'",
    409: "a step named 'titanic' already exists; choose another name or PATCH it",
    413: "the request body is larger than the limit of 4194304 bytes (4 MiB)",
    415: "send application/json (url or path) or multipart/form-data (an upload)",
    422: "invalid request: name: String should match pattern '^[A-Za-z][A-Za-z0-9_-]{0,127}$'",
    503: "pycaret runs in the engine environment 'pycaret', which this server does not have",
    504: "the prediction steps did not finish in time; follow 'ts-2-predict-1a2b3c4d-predictions'",
}


def error(status: int) -> dict[str, Any]:
    """An example error body of ``status`` (the shape of ``api/errors.py: error_response``)."""
    message = ERROR_MESSAGES.get(status, "JSON error with a clear message")
    return {"result": message, "error": {"status": status, "code": CODES.get(status, "error"), "message": message}}


def ok(
    example: Any, description: str = "Successful response", errors: Iterable[int] = ()
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its success example, and the error statuses it answers that the OpenAPI
    document cannot tell from the route's shape (``app.py`` documents the others -- 401/403 from its role,
    404 from its path parameters, 400/413/422 from its body... -- with the shared error body)."""
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": description, "content": {"application/json": {"example": example}}}
    }
    for status in errors:
        responses[status] = {"description": "JSON error with a clear message"}
    return responses


CREATED = {"result": "/api/v1/dataset/csv/titanic_train"}
LIST = {"result": [METADATA]}
PAGE = {"result": [METADATA, {"PassengerId": 1, "Survived": 0, "Pclass": 3}]}
UPDATED = {"result": "/api/v1/dataset/csv/titanic_train"}
DELETED = {"result": "deleted titanic_train"}
RUNS = {"result": [RUN]}
LOGS = {"result": {"run": 1, "status": "finished", "stdout": "downloaded 61194 bytes\n", "stderr": ""}}
ARTIFACTS = {"result": [{"name": "data.parquet", "size": 24576}, {"name": "summary.json", "size": 512}]}
CANCELLED = {"result": {**METADATA, "status": "cancelled", "finished": False}}
OBSERVED = {"result": METADATA, "timedOut": False}
LINEAGE = {
    "result": {
        "nodes": [METADATA, {**METADATA, "name": "titanic_X", "service": "transform", "tool": "projection"}],
        "edges": [{"parent": "titanic_train", "child": "titanic_X", "reference": "parentName"}],
    }
}
HEALTH = {"result": {"status": "ok", "version": "0.1.0", "instance": "host-1a2b3c4d"}}

# ----- online prediction (api/routes_serving.py, api/routes_inference.py) ------------------------------

PREDICT_REQUEST = {"records": [{"age": 39, "workclass": "State-gov", "education": "Bachelors", "hours-per-week": 40}]}
PREDICTION = {
    "result": {
        "model": "adult",
        "version": 3,
        "task": "classification",
        "rows": 1,
        "predictions": ["<=50K"],
        "classes": ["<=50K", ">50K"],
        "probabilities": [[0.87, 0.13]],
    }
}
V2_HEALTH = {"live": True}
V2_READY = {"ready": True}
V2_METADATA = {
    "name": "adult",
    "versions": ["3"],
    "platform": "flaml",
    "inputs": [
        {"name": "age", "datatype": "INT64", "shape": [-1]},
        {"name": "workclass", "datatype": "BYTES", "shape": [-1]},
    ],
    "outputs": [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ],
}
V2_REQUEST = {
    "id": "42",
    "inputs": [
        {"name": "age", "shape": [1], "datatype": "INT64", "data": [39]},
        {"name": "workclass", "shape": [1], "datatype": "BYTES", "data": ["State-gov"]},
    ],
}
V2_ANSWER = {
    "model_name": "adult",
    "model_version": "3",
    "id": "42",
    "outputs": [
        {"name": "predict", "shape": [1], "datatype": "BYTES", "data": ["<=50K"]},
        {
            "name": "predict_proba",
            "shape": [1, 2],
            "datatype": "FP64",
            "data": [0.87, 0.13],
            "parameters": {"classes": ["<=50K", ">50K"]},
        },
    ],
}


# ----- request bodies -------------------------------------------------------------------------------

_X, _Y = "$titanic_X", "$titanic_y.Survived"
_TEST_X, _TEST_Y = "$test_X", "$test_y.Survived"
_FIT = {"X": _X, "y": _Y}
_SCORE = {"X": _TEST_X, "y": _TEST_Y}
_DIGITS_TRAIN = {"x": "$mnist.train_images", "y": "$mnist.train_labels"}
_DIGITS_TEST = {"x": "$mnist.test_images", "y": "$mnist.test_labels"}


def _method(name: str, parent: str, method: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "parentName": parent, "method": method, "methodParameters": parameters, **extra}


def _automl(name: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "parentName": "titanic_train", "target": "Survived", "task": "classification"}
    return {**body, "timeBudget": 60, "metric": "accuracy", "seed": 1, **extra}


# Request examples of the step routes whose request model's own example does not fit them, by
# "service/tool". The others keep their model's example.
REQUESTS: dict[str, dict[str, Any]] = {
    # datasets: besides titanic_train (DatasetBody's example, dataset/csv)
    "dataset/generic": {"name": "digits", "url": "https://example.org/digits.npz"},
    "dataset/timeseries": {"name": "robot_series", "url": "https://example.org/robot/failures.ts"},
    # transforms
    "transform/scikitlearn": _method("titanic_scaled", "titanic_scaler", "fit_transform", {"X": _X}),
    "transform/tsfresh": _method(
        "robot_features", "robot_series", "extract_features", {"default_fc_parameters": "minimal"}
    ),
    "transform/pycaret": _method(
        "titanic_setup",
        "titanic_experiment",
        "setup",
        {"data": "$titanic_train", "target": "Survived", "session_id": 1},
    ),
    "transform/split": {
        "name": "titanic_split",
        "parentName": "titanic_train",
        "target": "Survived",
        "task": "classification",
        "holdout": 0.2,
        "seed": 1,
    },
    # explore
    "explore/pycaret": _method(
        "titanic_plot", "titanic_setup", "plot_model", {"estimator": "$titanic_pycaret_best", "plot": "auc"}
    ),
    "explore/autokeras": {"name": "mnist_summary", "parentName": "mnist_search", "method": "summary"},
    # scikit-learn (train/scikitlearn keeps MethodBody's example, evaluate/scikitlearn EvaluateBody's)
    "tune/scikitlearn": _method("titanic_grid_fitted", "titanic_grid", "fit", _FIT),
    "predict/scikitlearn": _method("titanic_gb_predicted", "titanic_gb_trained", "predict", {"X": _TEST_X}),
    # FLAML (automl/flaml keeps AutoMLBody's example)
    "train/flaml": _method("flaml_trained", "flaml_automl", "fit", {"X_train": _X, "y_train": _Y, "time_budget": 60}),
    "tune/flaml": _method("flaml_tuned", "flaml_automl", "fit", {"X_train": _X, "y_train": _Y, "time_budget": 300}),
    "evaluate/flaml": _method("flaml_evaluated", "flaml_trained", "score", _SCORE, metrics=["accuracy", "f1"]),
    "predict/flaml": _method("flaml_predicted", "flaml_trained", "predict", {"X": _TEST_X}),
    # TPOT
    "automl/tpot": _automl("titanic_tpot_search", timeBudget=120, generations=5, populationSize=20),
    "train/tpot": _method("tpot_trained", "titanic_tpot", "fit", _FIT),
    "tune/tpot": _method("tpot_tuned", "titanic_tpot", "fit", _FIT),
    "evaluate/tpot": _method("tpot_evaluated", "tpot_trained", "score", _SCORE, metrics=["accuracy"]),
    "predict/tpot": _method("tpot_predicted", "tpot_trained", "predict", {"X": _TEST_X}),
    # H2O
    "automl/h2o": _automl("titanic_h2o_search", cv=5),
    "train/h2o": _method("h2o_trained", "titanic_h2o", "train", {"y": "Survived", "training_frame": "$titanic_train"}),
    "tune/h2o": _method("h2o_tuned", "titanic_h2o", "train", {"y": "Survived", "training_frame": "$titanic_train"}),
    "evaluate/h2o": _method("h2o_evaluated", "h2o_trained", "score", _SCORE, metrics=["accuracy"]),
    "predict/h2o": _method("h2o_predicted", "h2o_trained", "predict", {"X": _TEST_X}),
    # AutoGluon
    "automl/autogluon": _automl("titanic_autogluon", timeBudget=120),
    "train/autogluon": _method("autogluon_trained", "titanic_predictor", "fit", {"train_data": "$titanic_train"}),
    "tune/autogluon": _method(
        "autogluon_tuned", "titanic_predictor", "fit", {"train_data": "$titanic_train", "presets": "best_quality"}
    ),
    "evaluate/autogluon": _method("autogluon_evaluated", "autogluon_trained", "score", _SCORE, metrics=["accuracy"]),
    "predict/autogluon": _method("autogluon_predicted", "autogluon_trained", "predict", {"X": _TEST_X}),
    # PyCaret (model/pycaret and automl/pycaret keep their models' examples)
    "train/pycaret": _method("titanic_pycaret_best", "titanic_setup", "compare_models", {"include": ["lr", "rf"]}),
    "tune/pycaret": _method(
        "titanic_pycaret_tuned", "titanic_setup", "tune_model", {"estimator": "$titanic_pycaret_best", "n_iter": 10}
    ),
    "evaluate/pycaret": _method(
        "titanic_pycaret_final", "titanic_setup", "finalize_model", {"estimator": "$titanic_pycaret_tuned"}
    ),
    "predict/pycaret": _method(
        "titanic_pycaret_predicted",
        "titanic_setup",
        "predict_model",
        {"estimator": "$titanic_pycaret_final", "data": "$titanic_test"},
    ),
    "builder/pycaret": {
        "name": "titanic_pycaret_report",
        "code": "exp = pycaret.classification.ClassificationExperiment()\n"
        "exp.setup(train, target='Survived', session_id=1)\nresponse = str(exp.compare_models())",
        "parameters": {"train": "$titanic_train"},
    },
    # code (function/python keeps CodeBody's example)
    "builder/python": {
        "name": "titanic_describe",
        "code": "train.describe().to_csv('describe.csv')\nresponse = len(train)",
        "parameters": {"train": "$titanic_train"},
    },
    # automl/compare: its predict and evaluate services
    "predict/compare": _method("titanic_compare_predicted", "titanic_compare", "predict", {"X": _TEST_X}),
    "evaluate/compare": _method(
        "titanic_compare_evaluated", "titanic_compare", "score", _SCORE, metrics=["accuracy", "roc_auc"]
    ),
    # AutoKeras (model/autokeras and automl/autokeras keep their models' examples)
    "train/autokeras": _method(
        "mnist_search", "mnist_model", "fit", {**_DIGITS_TRAIN, "epochs": 2, "validation_split": 0.2}
    ),
    "tune/autokeras": _method(
        "mnist_tuned", "mnist_model", "fit", {**_DIGITS_TRAIN, "epochs": 5, "validation_split": 0.2}
    ),
    "builder/autokeras": {
        "name": "mnist_script",
        "code": "model = autokeras.ImageClassifier(max_trials=1, overwrite=True, seed=1)\n"
        "model.fit(x, y, epochs=2)\nresponse = model.evaluate(x, y)",
        "parameters": {"x": "$mnist.train_images", "y": "$mnist.train_labels"},
    },
    "evaluate/autokeras": _method("mnist_search_evaluated", "mnist_search", "evaluate", _DIGITS_TEST),
    "predict/autokeras": _method("mnist_search_predicted", "mnist_search", "predict", {"x": "$mnist.test_images"}),
    # Keras (model/keras keeps its model's example)
    "train/keras": _method(
        "mnist_cnn_compiled",
        "mnist_cnn",
        "compile",
        {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
    ),
    "evaluate/keras": _method("mnist_cnn_evaluated", "mnist_cnn_fitted", "evaluate", _DIGITS_TEST),
    "predict/keras": _method("mnist_cnn_predicted", "mnist_cnn_fitted", "predict", {"x": "$mnist.test_images"}),
}
