"""The seed's flow over plain HTTP: ingest, dataType, projection, histogram, model, train, predict,
evaluate -- each a named, persisted, inspectable step -- and the same data through automl/flaml."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.helpers import content, run, upload
from tests.conftest import ServerHandle
from tests.data import titanic_like

FEATURES = ["Pclass", "Age", "SibSp", "Parch", "Fare"]


@pytest.fixture(scope="module")
def titanic(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("titanic")
    with server.client() as http:
        upload(http, "pipe_train", titanic_like(folder / "train.csv", rows=400, seed=1))
        upload(http, "pipe_test", titanic_like(folder / "test.csv", rows=150, seed=2, first_id=1000))
        for name in ("pipe_train", "pipe_test"):
            assert server.wait(name)["status"] == "finished"
    return "pipe_train"


def test_csv_becomes_typed_parquet_with_schema(server: ServerHandle, http: httpx.Client, titanic: str) -> None:
    page = content(http, f"/dataset/csv/{titanic}", limit=3)
    meta, rows = page[0], page[1:]
    assert meta["rowCount"] == 400
    assert meta["fields"][:3] == ["PassengerId", "Survived", "Pclass"]
    assert meta["types"]["Age"] == "number" and meta["types"]["Name"] == "string"
    assert len(rows) == 3 and rows[0]["PassengerId"] == 1
    assert any(r["Age"] is None for r in content(http, f"/dataset/csv/{titanic}", limit=100)[1:])
    # skip/limit page and a column filter
    assert content(http, f"/dataset/csv/{titanic}", skip=398, limit=10)[1:][-1]["PassengerId"] == 400
    females = content(http, f"/dataset/csv/{titanic}", query='{"Sex": "female"}', limit=100)[1:]
    assert females and all(r["Sex"] == "female" for r in females)


def test_seed_pipeline_end_to_end(server: ServerHandle, http: httpx.Client, titanic: str) -> None:
    for split in ("train", "test"):
        run(
            server,
            http,
            "/transform/dataType",
            {
                "name": f"pipe_{split}_typed",
                "parentName": f"pipe_{split}",
                "types": {"Pclass": "number", "SibSp": "number", "Parch": "number"},
            },
        )
        run(
            server,
            http,
            "/transform/projection",
            {
                "name": f"pipe_{split}_X",
                "parentName": f"pipe_{split}_typed",
                "fields": FEATURES,
            },
        )
        run(
            server,
            http,
            "/transform/projection",
            {
                "name": f"pipe_{split}_y",
                "parentName": f"pipe_{split}_typed",
                "fields": ["Survived"],
            },
        )
    histogram = run(
        server,
        http,
        "/explore/histogram",
        {
            "name": "pipe_hist",
            "parentName": "pipe_train",
            "fields": ["Sex", "Age"],
            "bins": 5,
        },
    )
    assert histogram["parents"] == ["pipe_train"]
    rows = content(http, "/explore/histogram/pipe_hist", limit=100)[1:]
    sexes = {r["value"]: r["count"] for r in rows if r["field"] == "Sex"}
    assert set(sexes) == {"male", "female"} and sum(sexes.values()) == 400
    assert sum(1 for r in rows if r["field"] == "Age") == 5

    run(
        server,
        http,
        "/model/scikitlearn",
        {
            "name": "pipe_gb",
            "modulePath": "sklearn.ensemble",
            "class": "HistGradientBoostingClassifier",
            "classParameters": {"max_iter": 50, "random_state": 1},
        },
    )
    run(
        server,
        http,
        "/train/scikitlearn",
        {
            "name": "pipe_gb_fit",
            "parentName": "pipe_gb",
            "method": "fit",
            "methodParameters": {"X": "$pipe_train_X", "y": "$pipe_train_y.Survived"},
        },
    )
    predicted = run(
        server,
        http,
        "/predict/scikitlearn",
        {
            "name": "pipe_gb_pred",
            "parentName": "pipe_gb_fit",
            "method": "predict",
            "methodParameters": {"X": "$pipe_test_X"},
        },
    )
    assert predicted["output"]["kind"] in {"table", "array"}
    assert len(content(http, "/predict/scikitlearn/pipe_gb_pred", limit=100)) == 101
    evaluated = run(
        server,
        http,
        "/evaluate/scikitlearn",
        {
            "name": "pipe_gb_eval",
            "parentName": "pipe_gb_fit",
            "method": "score",
            "methodParameters": {"X": "$pipe_test_X", "y": "$pipe_test_y.Survived"},
            "metrics": ["accuracy", "f1"],
        },
    )
    assert evaluated["metrics"]["accuracy"] == pytest.approx(0.7533, abs=0.01)  # the direct sklearn figure
    assert 0.0 < evaluated["metrics"]["f1"] <= 1.0

    lineage = http.get("/lineage/pipe_gb_eval").json()["result"]
    names = {n["name"] for n in lineage["nodes"]}
    assert {"pipe_train", "pipe_train_typed", "pipe_train_X", "pipe_gb", "pipe_gb_fit", "pipe_gb_eval"} <= names
    assert {"parent": "pipe_train_y", "child": "pipe_gb_fit", "reference": "$pipe_train_y.Survived"} in lineage["edges"]

    runs = http.get("/train/scikitlearn/pipe_gb_fit/runs").json()["result"]
    record = runs[0]
    assert record["status"] == "finished" and record["wallS"] > 0
    # The step's own memory above the warm worker's size at its start: 0 when it reused what earlier jobs of
    # that worker freed (tests/runtime/test_ownership.py checks that an allocation is counted).
    assert record["peakMemoryMb"] >= 0 and record["cpuTimeS"] > 0 and record["node"]
    # The server is shared with other tests: their train steps may be listed too, oldest first (stable pages).
    trained = http.get("/steps", params={"service": "train"}).json()["result"]
    assert {step["service"] for step in trained} == {"train"} and "pipe_gb_fit" in {step["name"] for step in trained}
    created = [step["createdAt"] for step in trained]
    assert created == sorted(created)


def test_flaml_automl_leaderboard_and_best_model(server: ServerHandle, http: httpx.Client, titanic: str) -> None:
    document = run(
        server,
        http,
        "/automl/flaml",
        {
            "name": "pipe_flaml",
            "parentName": titanic,
            "target": "Survived",
            "task": "classification",
            "timeBudget": 8,
            "metric": "accuracy",
            "seed": 1,
            "options": {"estimator_list": ["lgbm", "rf", "extra_tree"]},
        },
    )
    assert document["bestLearner"] in {"lgbm", "rf", "extra_tree"}
    assert 0.5 < document["metrics"]["bestScore"] <= 1.0
    excluded = document["columns"]["excluded"]
    assert "PassengerId" in excluded and "Name" in excluded and "Ticket" in excluded
    board = content(http, "/dataset/leaderboard/pipe_flaml_leaderboard", limit=10)
    assert board[0]["status"] == "finished" and board[0]["owner"] == "pipe_flaml"
    learners = [row["learner"] for row in board[1:]]
    assert learners and set(learners) <= {"lgbm", "rf", "extra_tree"}
    run(
        server,
        http,
        "/predict/flaml",
        {
            "name": "pipe_flaml_pred",
            "parentName": "pipe_flaml",
            "method": "predict",
            "methodParameters": {"X": "$pipe_test"},
        },
    )
    assert len(content(http, "/predict/flaml/pipe_flaml_pred", limit=100)) == 101


def test_generic_dataset_and_function_reference(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    blob = tmp_path / "numbers.txt"
    blob.write_text("1 2 3 4\n")
    upload(http, "pipe_blob", blob, tool="generic")
    assert server.wait("pipe_blob")["status"] == "finished"
    document = run(
        server,
        http,
        "/function/python",
        {
            "name": "pipe_sum",
            "parameters": {"path": "$pipe_blob"},
            "code": "print('reading', path)\nresponse = {'total': sum(map(int, open(path).read().split()))}",
        },
    )
    assert content(http, "/function/python/pipe_sum")[1] == {"total": 10}
    logs = http.get("/function/python/pipe_sum/logs").json()["result"]
    assert "reading" in logs["stdout"]
    assert document["parents"] == ["pipe_blob"]


def test_dataset_from_url_and_import_dir(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    source = titanic_like(server.home / "imports" / "small.csv", rows=20)
    run(server, http, "/dataset/csv", {"name": "pipe_path", "path": str(source)})
    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    refused = http.post("/dataset/csv", json={"name": "pipe_outside", "path": str(outside)})
    assert refused.status_code == 422 and "outside the import directories" in refused.json()["result"]
    # URL ingest from a loopback server that the test server allow-lists
    url = f"{server.api}/dataset/csv/pipe_path/artifacts/data.parquet"
    run(server, http, "/dataset/generic", {"name": "pipe_url", "url": url})
    assert content(http, "/dataset/generic/pipe_url")[0]["sizeBytes"] > 100
    for bad in ("file:///etc/passwd", "ftp://example.org/x.csv", "http://10.1.2.3/x.csv", "http://169.254.169.254/"):
        response = http.post("/dataset/csv", json={"name": "pipe_bad_url", "url": bad})
        assert response.status_code == 422, (bad, response.text)
    assert http.get("/steps/pipe_bad_url").status_code == 404
