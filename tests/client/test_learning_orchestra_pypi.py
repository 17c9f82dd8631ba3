"""The real Learning Orchestra client from PyPI (``learning-orchestra-client`` 2.2.3) against a real server.

Every public class and method of that client is driven here except those that need what this server does not
offer: its ``Observer`` (it opens MongoDB with a password; so do every ``*_sync`` method and every ``wait``,
which call it), ``BuilderSparkMl`` and the TensorFlow classes. The pipelines use the client's async methods
and wait with the REST long poll, as docs/learning-orchestra.md shows. The data is generated here and
served over loopback HTTP, as a cluster reads ``datasetURI``.

The AutoML branch's ``BuilderPycaret.search_report`` (not on PyPI) is checked with its exact request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from learning_orchestra_client.dataset.csv import DatasetCsv
from learning_orchestra_client.dataset.generic import DatasetGeneric
from learning_orchestra_client.evaluate.scikitlearn import EvaluateScikitLearn
from learning_orchestra_client.explore.histogram import ExploreHistogram
from learning_orchestra_client.explore.scikitlearn import ExploreScikitLearn
from learning_orchestra_client.function.python import FunctionPython
from learning_orchestra_client.model.scikitlearn import ModelScikitLearn
from learning_orchestra_client.observe.observe import Observer
from learning_orchestra_client.predict.scikitlearn import PredictScikitLearn
from learning_orchestra_client.train._train import Train
from learning_orchestra_client.train.scikitlearn import TrainScikitLearn
from learning_orchestra_client.transform.data_type import TransformDataType
from learning_orchestra_client.transform.projection import TransformProjection
from learning_orchestra_client.transform.scikitlearn import TransformScikitLearn
from tests.client.conftest import write_csv
from tests.conftest import ServerHandle
from tests.data import titanic_like
from tests.web import serving

LO_API = "/api/learningOrchestra/v1"
# titanic.py's columns: the projection keeps them, the dataType call makes the numeric ones numbers.
REQUIRED_COLUMNS = ["PassengerId", "Pclass", "Age", "SibSp", "Parch", "Fare", "Name", "Sex", "Embarked", "Survived"]
NUMBER_TYPES = {"Age": "number", "Fare": "number", "Parch": "number", "PassengerId": "number", "Pclass": "number"}


@dataclass
class WebServer:
    root: Path
    port: int

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A loopback HTTP server for the files a dataset step downloads (the server allow-lists 127.0.0.1)."""
    root = tmp_path_factory.mktemp("www")
    titanic_like(root / "train.csv", rows=120, seed=0)
    titanic_like(root / "test.csv", rows=40, seed=1, first_id=1000)
    write_csv(root / "points.csv")
    np.savez(root / "arrays.npz", images=np.arange(24, dtype=np.uint8).reshape(2, 3, 4), labels=np.array([3, 7]))

    with serving(root) as port:
        yield WebServer(root=root, port=port)


@pytest.fixture
def lo(server: ServerHandle) -> Iterator[Callable[..., Any]]:
    """Makes client objects for the server: ``lo(DatasetCsv)``. Each one opens a ``MongoClient`` to the cluster
    address when it is made (its ``Observer``; here that address is the HTTP server, which answers the
    handshake with a 400) and never closes it: closed here, so no client outlives its test."""
    made: list[Any] = []

    def make(cls: type[Any], *args: Any) -> Any:
        made.append(cls(server.url, *args))
        return made[-1]

    yield make
    for client in made:
        for value in vars(client).values():
            if isinstance(value, Observer):
                value._Observer__database.client.close()


def finished(server: ServerHandle, *names: str) -> list[dict[str, Any]]:
    """The REST wait (``GET /observe/{name}``) in place of the client's MongoDB ``wait``."""
    documents = [server.wait(name) for name in names]
    for document in documents:
        assert document["status"] == "finished", document
    return documents


def created(answer: Any, service: str, tool: str, name: str) -> None:
    """What an ``*_async`` method returns for a created step: the server's JSON with the step's URL."""
    assert answer == {"result": f"/api/v1/{service}/{tool}/{name}"}, answer


def rows(page: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a content page ``{"result": [metadata, row, ...]}``."""
    return list(page["result"][1:])


def test_titanic_datasets_projection_types_in_place_and_histogram(
    server: ServerHandle, web: WebServer, uid: str, lo: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    train, test = f"{uid}_training", f"{uid}_testing"
    dataset_csv = lo(DatasetCsv)
    created(dataset_csv.insert_dataset_async(url=web.url("train.csv"), dataset_name=train), "dataset", "csv", train)
    created(dataset_csv.insert_dataset_async(url=web.url("test.csv"), dataset_name=test), "dataset", "csv", test)
    finished(server, train, test)

    # search with skip/limit, and a query as this client writes it: the repr of a dict in the URL
    page = dataset_csv.search_dataset_content(train, limit=2, skip=1)
    assert page["result"][0]["name"] == train and [row["PassengerId"] for row in rows(page)] == [2, 3]
    females = rows(dataset_csv.search_dataset_content(train, query={"Sex": "female"}, limit=20))
    assert females and all(row["Sex"] == "female" for row in females)
    assert {train, test} <= {item["name"] for item in dataset_csv.search_all_datasets()["result"]}
    assert isinstance(dataset_csv.search_all_datasets(pretty_response=True), str)

    projection = lo(TransformProjection)
    train_projection, test_projection = f"{train}_projection", f"{test}_projection"
    answer = projection.remove_dataset_attributes_async(
        dataset_name=train, projection_name=train_projection, fields=REQUIRED_COLUMNS
    )
    created(answer, "transform", "projection", train_projection)
    without_label = [column for column in REQUIRED_COLUMNS if column != "Survived"]
    projection.remove_dataset_attributes_async(dataset_name=test, projection_name=test_projection, fields=without_label)
    finished(server, train_projection, test_projection)
    first = rows(projection.search_projection_content(projection_name=train_projection, limit=1))[0]
    assert list(first) == REQUIRED_COLUMNS
    assert {train_projection, test_projection} <= {p["name"] for p in projection.search_all_projections()["result"]}

    # titanic.py's in-place dataType: the projections themselves change types (a re-execution)
    data_type = lo(TransformDataType)
    answer = data_type.update_dataset_type_async(dataset_name=test_projection, types=NUMBER_TYPES)
    created(answer, "transform", "projection", test_projection)
    data_type.update_dataset_type_async(dataset_name=train_projection, types={**NUMBER_TYPES, "Survived": "number"})
    for document in finished(server, test_projection, train_projection):
        assert document["runs"] == 2 and document["parameters"]["types"]["Pclass"] == "number"
    typed = rows(data_type.search_datatype_content(train_projection, limit=1))[0]
    assert isinstance(typed["Pclass"], float) and isinstance(typed["Survived"], float)
    # and a dataset in place (the AutoML branch's titanicPycaret.py); earlier forced types are kept
    data_type.update_dataset_type_async(dataset_name=train, types={"Pclass": "string"})
    finished(server, train)  # a step is re-executed once it has settled (a second PATCH meanwhile is a 409)
    data_type.update_dataset_type_async(dataset_name=train, types={"SibSp": "number"})
    (document,) = finished(server, train)
    assert document["parameters"]["types"] == {"Pclass": "string", "SibSp": "number"}
    assert rows(dataset_csv.search_dataset_content(train, limit=1))[0]["Pclass"] in {"1", "2", "3"}
    assert isinstance(data_type.search_all_datatype()["result"], list)

    histogram = lo(ExploreHistogram)
    hist = f"{uid}_hist"
    created(histogram.run_histogram_async(train_projection, hist, ["Sex", "Pclass"]), "explore", "histogram", hist)
    finished(server, hist)
    counts = rows(histogram.search_histogram_content(hist, limit=50))
    assert sum(row["count"] for row in counts if row["field"] == "Sex") == 120
    assert hist in {h["name"] for h in histogram.search_all_histograms()["result"]}

    # refusals reach the client as Learning Orchestra's: a logged message and an empty answer
    with caplog.at_level("WARNING"):
        assert data_type.update_dataset_type_async(dataset_name=hist, types={"count": "string"}) == {}
        assert dataset_csv.delete_dataset(train) == {}  # the projection and histogram depend on it
    assert "explore/histogram step" in caplog.text and "depend" in caplog.text

    assert histogram.delete_histogram(hist) == {"result": f"deleted {hist}"}
    assert projection.delete_projection(train_projection) == {"result": f"deleted {train_projection}"}
    assert data_type.delete_datatype(test_projection) == {"result": f"deleted {test_projection}"}
    assert dataset_csv.delete_dataset(train) == {"result": f"deleted {train}"}
    assert dataset_csv.delete_dataset(test) == {"result": f"deleted {test}"}


def test_scikit_learn_model_train_tune_predict_evaluate_transform_explore(
    server: ServerHandle, web: WebServer, uid: str, lo: Callable[..., Any]
) -> None:
    data, features, labels = f"{uid}_points", f"{uid}_X", f"{uid}_y"
    lo(DatasetCsv).insert_dataset_async(dataset_name=data, url=web.url("points.csv"))
    finished(server, data)
    projection = lo(TransformProjection)
    projection.remove_dataset_attributes_async(dataset_name=data, projection_name=features, fields=["x1", "x2"])
    projection.remove_dataset_attributes_async(dataset_name=data, projection_name=labels, fields=["label"])
    finished(server, features, labels)
    fit = {"X": f"${features}", "y": f"${labels}.label"}

    model, search, scaler = f"{uid}_lr", f"{uid}_search", f"{uid}_scaler"
    models = lo(ModelScikitLearn)
    answer = models.create_model_async(model, "sklearn.linear_model", "LogisticRegression", {"max_iter": 500})
    created(answer, "model", "scikitlearn", model)
    grid = {"estimator": f"${model}", "param_grid": {"C": [0.1, 10.0]}, "cv": 3}
    models.create_model_async(search, "sklearn.model_selection", "GridSearchCV", grid, description="a grid search")
    models.create_model_async(scaler, "sklearn.preprocessing", "StandardScaler", {})
    finished(server, model, search, scaler)
    assert models.search_model(model)["result"][0]["name"] == model
    assert {model, search, scaler} <= {m["name"] for m in models.search_all_models()["result"]}

    trained = f"{uid}_trained"
    training = lo(TrainScikitLearn)
    created(training.create_training_async(trained, model, model, "fit", fit), "train", "scikitlearn", trained)
    # 2.2.3 has no Tune class; its Train base builds the same request for any route, as Learning Orchestra's did
    tuned = f"{uid}_tuned"
    tune = lo(Train, f"{LO_API}/tune/scikitlearn")
    created(tune.create_training_async(tuned, search, search, "fit", fit), "tune", "scikitlearn", tuned)
    scaled = f"{uid}_scaled"
    transform = lo(TransformScikitLearn)
    answer = transform.create_transform_async(scaled, scaler, scaler, "fit_transform", {"X": f"${features}"})
    created(answer, "transform", "scikitlearn", scaled)
    finished(server, trained, tuned, scaled)
    assert rows(training.search_training_content(trained))[0]
    assert trained in {t["name"] for t in training.search_all_trainings()["result"]}
    assert len(rows(transform.search_transform_content(scaled, limit=5))) == 5
    assert scaled in {t["name"] for t in transform.search_all_transformations()["result"]}

    predicted, evaluated, explored = f"{uid}_predicted", f"{uid}_evaluated", f"{uid}_explored"
    predict = lo(PredictScikitLearn)
    answer = predict.create_prediction_async(predicted, model, trained, "predict", {"X": f"${features}"})
    created(answer, "predict", "scikitlearn", predicted)
    evaluate = lo(EvaluateScikitLearn)
    created(evaluate.create_evaluate_async(evaluated, model, tuned, "score", fit), "evaluate", "scikitlearn", evaluated)
    explore = lo(ExploreScikitLearn)
    answer = explore.create_explore_async(explored, model, trained, "predict_proba", {"X": f"${features}"})
    created(answer, "explore", "scikitlearn", explored)
    finished(server, predicted, evaluated, explored)

    predictions = rows(predict.search_prediction_content(predicted, limit=20, skip=10))
    assert len(predictions) == 20 and set(predictions[0]) == {"prediction"}
    assert predicted in {p["name"] for p in predict.search_all_predictions()["result"]}
    score = rows(evaluate.search_evaluate_content(evaluated))[0]
    assert 0.8 <= float(score) <= 1.0
    assert evaluated in {e["name"] for e in evaluate.search_all_evaluates()["result"]}
    assert len(rows(explore.search_explore_image(explored))) >= 1
    assert explore.search_explore_metadata(explored)["result"][0]["name"] == explored
    assert explored in {e["name"] for e in explore.search_all_explores()["result"]}

    assert explore.delete_explore(explored) == {"result": f"deleted {explored}"}
    assert evaluate.delete_evaluate(evaluated) == {"result": f"deleted {evaluated}"}
    assert predict.delete_prediction(predicted) == {"result": f"deleted {predicted}"}
    assert transform.delete_transform(scaled) == {"result": f"deleted {scaled}"}
    assert training.delete_training(trained) == {"result": f"deleted {trained}"}
    assert models.delete_model(scaler) == {"result": f"deleted {scaler}"}


def test_function_gets_a_generic_dataset_as_an_open_binary_file(
    server: ServerHandle, web: WebServer, uid: str, lo: Callable[..., Any]
) -> None:
    blob, loaded = f"{uid}_arrays", f"{uid}_loaded"
    generic = lo(DatasetGeneric)
    created(generic.insert_dataset_async(dataset_name=blob, url=web.url("arrays.npz")), "dataset", "generic", blob)
    finished(server, blob)
    assert blob in {d["name"] for d in generic.search_all_datasets()["result"]}
    assert generic.search_dataset_content(blob)["result"][0]["filename"] == "arrays.npz"

    # Learning Orchestra's meaning: an open binary file (its mnist code seeks and reads it), still path-like
    code = """
import os
import numpy as np

images_file.seek(0)
head = images_file.read(4)
images_file.seek(0)
with np.load(images_file) as arrays:
    images, labels = arrays['images'], arrays['labels']
response = {
    'zip': head == b'PK\\x03\\x04',
    'shape': list(images.shape),
    'labels': labels.tolist(),
    'pathLike': os.path.exists(os.fspath(images_file)),
}
"""
    function = lo(FunctionPython)
    answer = function.run_function_async(name=loaded, parameters={"images_file": f"${blob}"}, code=code)
    created(answer, "function", "python", loaded)
    finished(server, loaded)
    page = function.search_execution_content(name=loaded, limit=1, skip=0)
    assert rows(page) == [{"zip": True, "shape": [2, 3, 4], "labels": [3, 7], "pathLike": True}]
    # pipeline/mnist.py reads a result with skip=1 (in MongoDB its metadata was document 0): a single value
    # is the one row of the page whatever skip says
    assert rows(function.search_execution_content(name=loaded, limit=1, skip=1)) == rows(page)
    assert loaded in {f["name"] for f in function.search_all_executions()["result"]}
    assert function.delete_execution(loaded) == {"result": f"deleted {loaded}"}
    assert generic.delete_dataset(blob) == {"result": f"deleted {blob}"}


def test_builder_files_answer_the_automl_branchs_search_report(server: ServerHandle, uid: str) -> None:
    """``BuilderPycaret.search_report(file_name)`` of the AutoML branch's client (not on PyPI): a GET with a
    JSON body and no builder name; the newest builder step whose code wrote that file answers, as text."""
    url = server.url
    older, newer = f"{uid}_old", f"{uid}_new"
    code = "import pandas as pd\npd.DataFrame({'Model': ['lr'], 'Accuracy': [ACC]}).to_csv('report_tuned', sep='\\t')"
    # BuilderPycaret's body (function / functionParameters), here on builder/python: no PyCaret needed
    for name, accuracy in ((older, 0.5), (newer, 0.75)):
        body = {"name": name, "functionParameters": {}, "function": code.replace("ACC", str(accuracy))}
        assert requests.post(f"{url}{LO_API}/builder/python", json=body, timeout=30).status_code == 201
        finished(server, name)

    report = requests.get(f"{url}{LO_API}/explore/getlocaldatapycaret", json={"filename": "report_tuned"}, timeout=30)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/plain")
    assert report.text.splitlines() == ["\tModel\tAccuracy", "0\tlr\t0.75"]
    named = requests.get(
        f"{url}{LO_API}/explore/getlocaldatapycaret", params={"fileName": "report_tuned", "builderName": older}
    )
    assert named.text.splitlines()[1] == "0\tlr\t0.5"
    # only what a builder's code wrote, by the name its step lists
    for asked in ({"filename": "data.json"}, {"filename": "../../steps"}, {"filename": "report_tuned", "name": uid}):
        answer = requests.get(f"{url}{LO_API}/explore/getlocaldatapycaret", json=asked, timeout=30)
        assert answer.status_code in (404, 422), answer.text
