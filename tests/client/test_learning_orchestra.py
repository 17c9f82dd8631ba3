"""The Learning Orchestra-named classes against a real server: the seed's pipelines' calls, unchanged."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import automl_orchestra.client as client_package
from automl_orchestra.client import (
    AutoMLFlaml,
    BuilderPython,
    Client,
    ConflictError,
    DatasetCsv,
    EvaluateScikitLearn,
    ExploreHistogram,
    FunctionPython,
    ModelScikitLearn,
    NotFoundError,
    Observer,
    PredictScikitLearn,
    StepFailedError,
    TrainScikitLearn,
    TransformDataType,
    TransformProjection,
    WaitTimeoutError,
    learning_orchestra,
)
from automl_orchestra.client.learning_orchestra import wire_name

ROWS = 60  # rows of csv_file


@pytest.fixture
def url(server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server URL the way Learning Orchestra pipelines give it (``CLUSTER_IP``); auth is off."""
    monkeypatch.delenv("ORCHESTRA_TOKEN", raising=False)
    return str(server.url)


@pytest.fixture
def dataset(url: str) -> Iterator[DatasetCsv]:
    with DatasetCsv(url) as dataset_csv:
        yield dataset_csv


def test_wire_names() -> None:
    assert wire_name("class_name") == "class"
    assert wire_name("method_name") == "method"
    assert wire_name("class_parameters") == "classParameters"
    assert wire_name("time_budget") == "timeBudget"
    assert wire_name("parameters", {"parameters": "methodParameters"}) == "methodParameters"
    assert wire_name("modulePath") == "modulePath"


def _public_classes(module: ModuleType) -> set[str]:
    """Public names of the module that are classes of this package (not the typing or httpx ones it imports)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isclass(value) and value.__module__.startswith("automl_orchestra.")
    }


def test_learning_orchestra_all_is_every_class_of_the_module() -> None:
    exported = learning_orchestra.__all__
    assert len(exported) == len(set(exported))
    assert set(exported) == _public_classes(learning_orchestra) - {"Client", "ClientOwner", "NotFoundError"}
    # once missing from a hand-kept list
    assert {"AutoMLH2O", "ModelPycaret", "AutoMLAutoGluon", "AutoMLCompare", "BuilderPycaret"} <= set(exported)


def test_client_package_all_is_what_it_exports() -> None:
    exported = client_package.__all__
    assert len(exported) == len(set(exported))
    public = {name for name, value in vars(client_package).items() if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(client_package, name))}
    assert set(exported) == public - submodules
    assert set(learning_orchestra.__all__) <= set(exported)
    assert all(
        getattr(client_package, name) is getattr(learning_orchestra, name) for name in learning_orchestra.__all__
    )


def test_each_learning_orchestra_class_is_its_service_and_tool() -> None:
    """Learning Orchestra's class name is service + tool, and no two classes share a ``service/tool`` pair."""
    by_path: dict[str, set[type]] = {}
    for name in learning_orchestra.__all__:
        cls = getattr(learning_orchestra, name)
        if cls is Observer:
            continue
        service, tool = cls.service, cls.tool
        spelled = name.replace("Training", "Train", 1)  # the seed's section 3.1.8 says TrainingPycaret
        assert service and tool and spelled.lower() == f"{service}{tool}".lower(), name
        by_path.setdefault(f"/{service}/{tool}", set()).add(cls)
    assert all(len(classes) == 1 for classes in by_path.values()), by_path  # aliases are the same class
    assert learning_orchestra.TrainAutokeras is learning_orchestra.TrainAutoKeras
    # the seed's section 3.1.8 names
    assert learning_orchestra.ModelAutokeras is learning_orchestra.ModelAutoKeras
    assert learning_orchestra.TrainingPycaret is learning_orchestra.TrainPycaret
    assert learning_orchestra.TrainingAutokeras is learning_orchestra.TrainAutoKeras
    assert (learning_orchestra.TuneAutokeras.service, learning_orchestra.TuneAutokeras.tool) == ("tune", "autokeras")
    assert (learning_orchestra.BuilderAutokeras.service, learning_orchestra.BuilderAutokeras.tool) == (
        "builder",
        "autokeras",
    )
    assert learning_orchestra.TrainH2O.__module__ == learning_orchestra.__name__
    assert learning_orchestra.TrainH2O.__qualname__ == "TrainH2O"
    assert learning_orchestra.AutoMLH2O.__doc__.startswith("``automl/h2o``: ")


def test_pipeline_with_sync_methods(url: str, uid: str, csv_file: Path, dataset: DatasetCsv) -> None:
    data, features, hist = f"{uid}_data", f"{uid}_features", f"{uid}_hist"
    model, trained, predicted, evaluated = f"{uid}_lr", f"{uid}_trained", f"{uid}_pred", f"{uid}_eval"

    metadata = dataset.upload_dataset_sync(data, csv_file)
    assert metadata["status"] == "finished" and metadata["finished"] is True

    # Learning Orchestra's in-place dataType: the dataset itself is re-ingested with the forced types
    data_type = TransformDataType(url)
    metadata = data_type.update_dataset_type_sync(dataset_name=data, types={"label": "string"})
    assert metadata["name"] == data and metadata["status"] == "finished" and metadata["runs"] == 2
    page = dataset.search_dataset_content(data, limit=5)
    assert page[0]["name"] == data and len(page) == 6
    assert all(isinstance(row["label"], str) for row in page[1:])
    # the same page through TransformDataType, as a Learning Orchestra user would read it
    assert data_type.search_datatype_content(data, limit=5)[1:] == page[1:]
    data_type.update_dataset_type_sync(dataset_name=data, types={"color": "string", "label": "integer"})
    assert all(isinstance(row["label"], int) for row in dataset.search_dataset_content(data)[1:])
    data_type.update_dataset_type_sync(dataset_name=data, types={"x2": "number"})  # earlier types are kept
    assert dataset.search_metadata(data)["parameters"]["types"] == {
        "color": "string",
        "label": "integer",
        "x2": "number",
    }

    projection = TransformProjection(url)
    metadata = projection.remove_dataset_attributes_sync(data, features, ["x1", "x2"])
    assert metadata["name"] == features and metadata["status"] == "finished"
    rows = projection.search_projection_content(features, limit=3)[1:]
    assert len(rows) == 3 and all(set(row) == {"x1", "x2"} for row in rows)

    histogram = ExploreHistogram(url)
    metadata = histogram.run_histogram_sync(data, hist, ["color", "x1"])
    assert metadata["status"] == "finished"
    content = histogram.search_histogram_content(hist)
    assert len(content) >= 2 and "red" in json.dumps(content[1:])

    models = ModelScikitLearn(url)
    metadata = models.create_model_sync(
        name=model,
        module_path="sklearn.linear_model",
        class_name="LogisticRegression",
        class_parameters={"max_iter": 500},
    )
    assert metadata["status"] == "finished"
    assert metadata["parameters"]["class"] == "LogisticRegression"

    training = TrainScikitLearn(url)
    metadata = training.create_training_sync(
        name=trained,
        model_name=model,
        parent_name=model,
        method_name="fit",
        parameters={"X": f"${features}", "y": f"${data}.label"},
    )
    assert metadata["status"] == "finished"

    prediction = PredictScikitLearn(url)
    metadata = prediction.create_prediction_sync(
        name=predicted,
        model_name=model,
        parent_name=trained,
        method_name="predict",
        parameters={"X": f"${features}"},
    )
    assert metadata["status"] == "finished"
    rows = prediction.search_prediction_content(predicted, limit=100)[1:]  # a table: one prediction per row
    assert len(rows) == ROWS and all(len(row) == 1 for row in rows)
    assert {value for row in rows for value in row.values()} <= {0, 1}

    evaluation = EvaluateScikitLearn(url)
    metadata = evaluation.create_evaluate_sync(
        name=evaluated,
        model_name=model,
        parent_name=trained,
        method_name="score",
        parameters={"X": f"${features}", "y": f"${data}.label"},
    )
    assert metadata["status"] == "finished"
    score = evaluation.search_evaluate_content(evaluated)[1]
    assert isinstance(score, float) and 0.8 <= score <= 1.0

    names = {step["name"] for step in training.search_all_trainings()}
    assert trained in names
    pretty = models.search_model(model, pretty_response=True)
    assert isinstance(pretty, str) and json.loads(pretty)[0]["name"] == model


def test_seed_style_async_calls_and_wait(url: str, uid: str, csv_file: Path, dataset: DatasetCsv) -> None:
    """The calls of the seed's Appendix A/B, in their order and with their keywords."""
    train = f"{uid}_train"
    dataset.delete_dataset(train)  # the pipeline starts by deleting: a missing step is not an error
    created = dataset.upload_dataset_async(dataset_name=train, file=csv_file)
    assert created.endswith(f"/dataset/csv/{train}")
    metadata = dataset.wait(dataset_name=train, timeout=1)  # timeout: each poll, not a deadline
    assert metadata["status"] == "finished"

    transform_data_type = TransformDataType(url)
    url_of = transform_data_type.update_dataset_type_async(dataset_name=train, types={"x1": "number", "x2": "number"})
    assert url_of.endswith(f"/dataset/csv/{train}")
    assert transform_data_type.wait(dataset_name=train, timeout=1)["status"] == "finished"

    function_python = FunctionPython(url)
    name = f"{uid}_load"
    function_python.run_function_async(
        name=name,
        parameters={"train": f"${train}"},
        code="print(len(train))\nresponse = {'rows': len(train), 'columns': list(train.columns)}\n",
    )
    assert function_python.wait(name)["status"] == "finished"
    pretty = function_python.search_execution_content(name=name, pretty_response=True)
    assert isinstance(pretty, str)
    page = json.loads(pretty)
    assert page[0]["name"] == name and page[1] == {"rows": ROWS, "columns": ["x1", "x2", "color", "label"]}
    assert function_python.search_execution_content(name, limit=1)[1]["rows"] == ROWS
    assert name in {item["name"] for item in function_python.search_all_executions()}


def test_builder_files_written_by_code_are_readable(url: str, uid: str, csv_file: Path, dataset: DatasetCsv) -> None:
    """Appendix A: the builder code writes 'score'; search_builder_register_predictions(file_name=) reads it."""
    train = f"{uid}_train"
    dataset.upload_dataset_sync(train, csv_file)
    builder = BuilderPython(url)
    name = f"{uid}_builder"
    builder.run_python_async(
        name=name,
        parameters={"train": f"${train}"},
        code="train.describe().to_csv('score', sep='\\t', encoding='utf-8')\nresponse = None\n",
    )
    builder.wait(name, 1)
    text = builder.search_builder_register_predictions(file_name="score")
    assert "x1" in text and "\t" in text
    assert builder.search_report("score", name) == text


def test_failures_and_typed_errors(url: str, uid: str) -> None:
    function_python = FunctionPython(url)
    with pytest.raises(StepFailedError) as info:
        function_python.run_function_sync(name=f"{uid}_fails", code="raise RuntimeError('kaputt-42')\n")
    assert info.value.step_status == "failed" and "kaputt-42" in str(info.value)
    metadata = function_python.wait(f"{uid}_fails", raise_on_failure=False)
    assert metadata["status"] == "failed"

    models = ModelScikitLearn(url)
    models.create_model_async(f"{uid}_m", "sklearn.tree", "DecisionTreeClassifier", {"max_depth": 2})
    with pytest.raises(ConflictError):
        models.create_model_async(f"{uid}_m", "sklearn.tree", "DecisionTreeClassifier", {"max_depth": 2})
    assert models.wait(f"{uid}_m")["status"] == "finished"

    message = models.delete_model(f"{uid}_absent")
    assert isinstance(message, str) and f"{uid}_absent" in message
    with pytest.raises(NotFoundError):
        models.delete(f"{uid}_absent", missing_ok=False)
    with pytest.raises(NotFoundError):
        models.search_model(f"{uid}_absent")
    assert "deleted" in models.delete_model(f"{uid}_m")
    with pytest.raises(TypeError):
        models.wait()  # no name at all


def test_wait_max_wait_and_cancel(url: str, uid: str) -> None:
    function_python = FunctionPython(url)
    name = f"{uid}_sleeps"
    function_python.run_function_async(name=name, code="import time\ntime.sleep(30)\nresponse = None\n")
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        function_python.wait(name, timeout=1, max_wait=1)
    assert time.monotonic() - started < 10
    function_python.cancel(name)
    assert function_python.wait(name, raise_on_failure=False)["status"] == "cancelled"


def test_update_methods_make_dependents_stale(url: str, uid: str, csv_file: Path, dataset: DatasetCsv) -> None:
    data, features, model, trained = f"{uid}_data", f"{uid}_X", f"{uid}_model", f"{uid}_trained"
    dataset.upload_dataset_sync(data, csv_file)
    TransformProjection(url).create_projection_sync(features, data, ["x1", "x2"])
    models = ModelScikitLearn(url)
    models.create_model_sync(model, "sklearn.linear_model", "LogisticRegression", {"max_iter": 200})
    training = TrainScikitLearn(url)
    training.create_training_sync(trained, model, model, "fit", {"X": f"${features}", "y": f"${data}.label"})

    metadata = models.update_model_sync(model, class_parameters={"C": 0.5, "max_iter": 200})
    assert metadata["runs"] == 2 and metadata["parameters"]["classParameters"]["C"] == 0.5
    assert training.search_metadata(trained)["status"] == "stale"

    metadata = training.update_training_sync(trained)  # re-execute as is: fresh again
    assert metadata["status"] == "finished" and metadata["runs"] == 2

    url_of = models.update_model_async(model, cascade=True, class_parameters={"C": 2.0, "max_iter": 200})
    assert url_of.endswith(f"/model/scikitlearn/{model}")
    models.wait(model)
    assert training.wait(trained)["runs"] == 3


def test_observer(url: str, uid: str) -> None:
    function_python = FunctionPython(url)
    name = f"{uid}_observed"
    function_python.run_function_async(name=name, code="import time\ntime.sleep(1)\nresponse = 1\n")
    with Observer(url) as observer:
        statuses = [metadata["status"] for metadata in observer.observe_pipe(name, timeout=120)]
        assert statuses[-1] == "finished"
        assert observer.wait(name, 5)["status"] == "finished"
        assert observer.observe(name, timeout=0)["status"] == "finished"


def test_shared_client_and_context_manager(server: Any, uid: str) -> None:
    with Client(server.url, token="") as client:
        models = ModelScikitLearn(client=client)
        models.create_model_sync(f"{uid}_shared", "sklearn.linear_model", "LinearRegression")
        models.close()  # a borrowed client stays open
        assert client.get(f"{uid}_shared")["status"] == "finished"


def test_automl_flaml_and_leaderboard(url: str, uid: str, csv_file: Path, dataset: DatasetCsv) -> None:
    data = f"{uid}_data"
    dataset.upload_dataset_sync(data, csv_file)
    automl = AutoMLFlaml(url)
    metadata = automl.run_automl_sync(
        name=f"{uid}_automl",
        parent_name=data,
        target="label",
        task="classification",
        time_budget=3,
        seed=1,
        options={"estimator_list": ["lrl1", "rf"]},
    )
    assert metadata["status"] == "finished"
    assert automl.leaderboard_name(f"{uid}_automl") == f"{uid}_automl_leaderboard"
    board = automl.search_leaderboard(f"{uid}_automl", limit=50)
    assert board[0]["name"] == f"{uid}_automl_leaderboard" and len(board) >= 2
