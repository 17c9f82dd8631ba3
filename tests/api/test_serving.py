"""Online prediction from registered versions over a real server with real serving workers: JSON records,
Arrow and Parquet batches, the signature's 422s and the batch 413, aliases that move under load, a killed
serving worker, an overloaded queue, and the Open Inference Protocol routes."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris

from tests.api.helpers import run
from tests.api.test_models import FEATURES, SPECIES, iris, make_iris, register, train_tree  # noqa: F401 -- fixture
from tests.conftest import ServerHandle, launch

ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
]


@pytest.fixture(scope="module")
def served(server: ServerHandle, iris: str) -> str:  # noqa: F811 -- the iris fixture
    """Model ``sv_iris``: version 1 a depth-1 tree, version 2 a depth-3 tree; alias ``champion`` on 1."""
    with server.client() as http:
        train_tree(server, http, "sv_tree1", depth=1)
        train_tree(server, http, "sv_tree3", depth=3)
        register(http, "sv_iris", "sv_tree1")
        register(http, "sv_iris", "sv_tree3")
        assert http.put("/models/sv_iris/aliases/champion", json={"version": 1}).status_code == 200
    return "sv_iris"


def predict(http: httpx.Client, path: str, body: Any = None, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
    response = http.post(path, json=body, **kwargs) if body is not None else http.post(path, **kwargs)
    assert response.status_code == expect, response.text
    document: dict[str, Any] = response.json()
    return document


def test_records_get_predictions_and_probabilities_from_latest_alias_and_number(
    http: httpx.Client, served: str
) -> None:
    latest = http.post(f"/models/{served}/predict", json={"records": ROWS})
    assert latest.status_code == 200, latest.text
    assert latest.headers["x-model-version"] == "2" and "predict;dur=" in latest.headers["server-timing"]
    result = latest.json()["result"]
    assert (result["model"], result["version"], result["task"], result["rows"]) == (served, 2, "classification", 2)
    assert result["predictions"] == ["setosa", "virginica"]
    assert result["classes"] == SPECIES
    assert np.allclose(np.sum(result["probabilities"], axis=1), 1.0)
    assert [SPECIES[int(np.argmax(p))] for p in result["probabilities"]] == result["predictions"]

    champion = predict(http, f"/models/{served}@champion/predict", {"record": ROWS[1]})["result"]
    assert champion["version"] == 1 and champion["rows"] == 1
    one = predict(http, f"/models/{served}/versions/1/predict?probabilities=false", {"records": ROWS})["result"]
    assert one["probabilities"] is None and one["classes"] is None and len(one["predictions"]) == 2


def test_the_same_rows_as_arrow_and_parquet_get_the_same_answer(http: httpx.Client, served: str) -> None:
    data = load_iris()
    table = pa.table({name: data.data[:, i] for i, name in enumerate(FEATURES)})
    stream = io.BytesIO()
    with pa.ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    path = f"/models/{served}/versions/2/predict"
    by_arrow = predict(
        http, path, content=stream.getvalue(), headers={"content-type": "application/vnd.apache.arrow.stream"}
    )["result"]
    by_parquet = predict(
        http, path, content=parquet.getvalue(), headers={"content-type": "application/vnd.apache.parquet"}
    )["result"]
    records = [dict(zip(FEATURES, map(float, row), strict=True)) for row in data.data]
    by_json = predict(http, path, {"records": records})["result"]
    assert by_arrow["rows"] == 150
    assert by_arrow["predictions"] == by_parquet["predictions"] == by_json["predictions"]
    accuracy = np.mean(np.asarray(by_json["predictions"]) == np.asarray(SPECIES)[data.target])
    assert accuracy > 0.9


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}]}, ["missing", "petal_width"]),
        ({"records": [{**ROWS[0], "colour": "red"}]}, ["unknown", "colour"]),
        ({"records": [{**ROWS[0], "petal_width": "wide"}]}, ["petal_width", "number"]),
        ({"records": [ROWS[0], {"sepal_length": 1}]}, ["records[1]"]),
        ({"records": [{**ROWS[0], "petal_width": [1, 2]}]}, ["petal_width", "single value"]),
        ({"records": []}, ["empty"]),
        ({"rows": ROWS}, ["records"]),
        ([1, 2, 3], ["records"]),
    ],
)
def test_rows_that_do_not_match_the_signature_are_a_422_naming_them(
    http: httpx.Client, served: str, body: Any, names: list[str]
) -> None:
    error = predict(http, f"/models/{served}/predict", body, expect=422)["error"]
    for name in names:
        assert name in error["message"]


def test_refusals_of_bodies_sizes_and_names(server: ServerHandle, http: httpx.Client, served: str) -> None:
    path = f"/models/{served}/predict"
    assert http.post(path, content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert http.post(path, content=b"\x00\x01", headers={"content-type": "text/csv"}).status_code == 415
    bad_arrow = http.post(path, content=b"garbage", headers={"content-type": "application/vnd.apache.arrow.stream"})
    assert bad_arrow.status_code == 422 and "Arrow" in bad_arrow.json()["error"]["message"]
    assert http.post("/models/nosuchmodel/predict", json={"records": ROWS}).status_code == 404
    assert http.post(f"/models/{served}@nosuchalias/predict", json={"records": ROWS}).status_code == 404
    assert http.post(f"/models/{served}/versions/99/predict", json={"records": ROWS}).status_code == 404
    assert http.post("/models/bad..name/predict", json={"records": ROWS}).status_code == 422


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server of its own with small serving limits (10 rows, one worker, one waiting request) that logs
    every prediction, serving ``sv_small`` version 1 (a depth-2 tree)."""
    handle = launch(
        tmp_path_factory.mktemp("serving-small"),
        ORCHESTRA_SERVING_MAX_ROWS="10",
        ORCHESTRA_SERVING_WORKERS="1",
        ORCHESTRA_SERVING_QUEUE="1",
        ORCHESTRA_PREDICTION_LOG_RATE="1",
    )
    try:
        make_iris(handle, tmp_path_factory.mktemp("iris-small"))
        with handle.client() as http:
            train_tree(handle, http, "sv_small_tree")
            register(http, "sv_small", "sv_small_tree")
        yield handle
    finally:
        handle.stop()


def test_a_batch_over_the_row_limit_is_a_413(small: ServerHandle) -> None:
    with small.client() as http:
        answer = http.post("/models/sv_small/predict", json={"records": ROWS * 6})
        assert answer.status_code == 413 and "at most 10" in answer.json()["error"]["message"]
        assert http.post("/models/sv_small/predict", json={"records": ROWS * 5}).status_code == 200
        table = pa.table({name: np.zeros(11) for name in FEATURES})
        parquet = io.BytesIO()
        pq.write_table(table, parquet)
        headers = {"content-type": "application/vnd.apache.parquet"}
        assert http.post("/models/sv_small/predict", content=parquet.getvalue(), headers=headers).status_code == 413


def test_an_overloaded_queue_answers_429_at_once(small: ServerHandle) -> None:
    """One worker, one waiting request: of many concurrent requests some are refused with 429 and
    Retry-After, none waits without end, and every other one is answered."""
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def call() -> None:
        with small.client() as http:
            barrier.wait()
            answer = http.post("/models/sv_small/predict", json={"records": ROWS * 5})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.headers["retry-after"] == "1"

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 12 and set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses


def test_predictions_are_logged_to_parquet_per_version(small: ServerHandle) -> None:
    with small.client() as http:
        http.post("/models/sv_small/predict", json={"records": ROWS}).raise_for_status()
    small.stop()  # the serving workers flush their logs when the server stops
    small.start()
    files = sorted((small.home / "artifacts" / "predictions" / "sv_small" / "1").glob("*.parquet"))
    assert files, "no prediction log was written"
    logged = pq.read_table(files).to_pandas()
    assert set(FEATURES) <= set(logged.columns)
    assert {"_prediction", "_probabilities", "_classes", "_time"} <= set(logged.columns)
    assert len(logged) >= 2 and "virginica" in set(logged["_prediction"])


def serving_workers(server: ServerHandle) -> list[psutil.Process]:
    assert server.process is not None
    return [
        child
        for child in psutil.Process(server.process.pid).children(recursive=True)
        if "automl_orchestra.runtime.serving_worker" in " ".join(child.cmdline())
    ]


def test_killed_serving_workers_are_replaced(server: ServerHandle, http: httpx.Client, served: str) -> None:
    """Workers killed between requests: each request is answered (a 503 naming the reason where it met the
    dying worker), and the pool is back to its size."""
    path = f"/models/{served}/versions/2/predict"
    predict(http, path, {"records": ROWS})
    workers = serving_workers(server)
    assert workers, "the pool runs serving workers"
    for worker in workers:
        worker.kill()
    answers = [http.post(path, json={"records": ROWS}) for _ in range(len(workers) + 1)]
    for answer in answers:
        assert answer.status_code == 200 or (
            answer.status_code == 503 and "killed by signal 9" in answer.json()["error"]["message"]
        ), answer.text
    wait_for_workers(server, len(workers), not_in={w.pid for w in workers})
    assert predict(http, path, {"records": ROWS})["result"]["predictions"] == ["setosa", "virginica"]


def test_the_request_in_flight_on_a_killed_worker_gets_a_503(small: ServerHandle) -> None:
    """The only worker is frozen, a request goes to it, the worker is killed: that request gets the 503 with
    the reason (never a hang), and the next one is answered by the replacement."""
    with small.client() as http:
        http.post("/models/sv_small/predict", json={"records": ROWS}).raise_for_status()
        (worker,) = serving_workers(small)
        worker.suspend()
        answers: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answers.append(http.post("/models/sv_small/predict", json={"records": ROWS}))
        )
        thread.start()
        wait_until_busy(small)
        worker.kill()
        thread.join(timeout=60)
        assert answers and answers[0].status_code == 503, answers
        assert "killed by signal 9" in answers[0].json()["error"]["message"]
        wait_for_workers(small, 1, not_in={worker.pid})
        assert http.post("/models/sv_small/predict", json={"records": ROWS}).status_code == 200


def wait_until_busy(server: ServerHandle) -> None:
    """Until a serving worker holds a request (the pool's in-flight gauge on /metrics)."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=server.url, timeout=10) as root:
        while "orchestra_serving_in_flight" not in busy_lines(root.get("/metrics").text):
            assert time.monotonic() < deadline, "the request never reached the serving worker"
            time.sleep(0.05)


def busy_lines(metrics: str) -> str:
    return "\n".join(
        line
        for line in metrics.splitlines()
        if line.startswith("orchestra_serving_in_flight") and not line.endswith(" 0.0")
    )


def wait_for_workers(server: ServerHandle, count: int, not_in: set[int]) -> None:
    deadline = time.monotonic() + 60
    while len([w for w in serving_workers(server) if w.pid not in not_in]) < count:
        assert time.monotonic() < deadline, "the killed workers were not replaced"
        time.sleep(0.2)


def test_moving_an_alias_under_load_fails_no_request(server: ServerHandle, http: httpx.Client, served: str) -> None:
    stop = threading.Event()
    seen: list[tuple[int, int | None]] = []

    def load() -> None:
        with server.client() as client:
            while not stop.is_set():
                answer = client.post(f"/models/{served}@staging/predict", json={"records": ROWS})
                version = answer.json()["result"]["version"] if answer.status_code == 200 else None
                seen.append((answer.status_code, version))

    assert http.put(f"/models/{served}/aliases/staging", json={"version": 1}).status_code == 200
    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        assert http.put(f"/models/{served}/aliases/staging", json={"version": 2}).status_code == 200
        time.sleep(1.0)
        assert http.put(f"/models/{served}/aliases/staging", json={"version": 1}).status_code == 200
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert seen and all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:5]
    versions = [version for _, version in seen]
    assert 1 in versions and 2 in versions and versions[-1] == 1


def test_the_open_inference_protocol(server: ServerHandle, served: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as root:
        assert root.get("/v2/health/live").json() == {"live": True}
        assert root.get("/v2/health/ready").status_code == 200
        answer = root.get(f"/v2/models/{served}")
        assert answer.status_code == 200, answer.text
        meta = answer.json()
        assert meta["name"] == served and meta["versions"] == ["2"] and meta["platform"] == "scikitlearn"
        assert [i["name"] for i in meta["inputs"]] == FEATURES and meta["inputs"][0]["datatype"] == "FP64"
        assert root.get(f"/v2/models/{served}/versions/1/ready").json()["ready"] is True
        assert root.get(f"/v2/models/{served}@champion").json()["versions"] == ["1"]
        request = {
            "id": "r1",
            "inputs": [
                {"name": name, "shape": [2], "datatype": "FP64", "data": [row[name] for row in ROWS]}
                for name in FEATURES
            ],
        }
        answer = root.post(f"/v2/models/{served}/versions/2/infer", json=request)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["model_name"], body["model_version"], body["id"]) == (served, "2", "r1")
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predict"]["data"] == ["setosa", "virginica"] and outputs["predict"]["datatype"] == "BYTES"
        assert outputs["predict_proba"]["shape"] == [2, 3]
        assert outputs["predict_proba"]["parameters"]["classes"] == SPECIES
        matrix = {
            "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [list(r.values()) for r in ROWS]}]
        }
        assert root.post(f"/v2/models/{served}/infer", json=matrix).json()["outputs"][0]["data"] == [
            "setosa",
            "virginica",
        ]
        wrong = root.post(
            f"/v2/models/{served}/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}
        )
        assert wrong.status_code == 422
        assert root.post("/v2/models/nosuch/infer", json=request).status_code == 404


def test_predictions_are_counted_per_model_version_on_metrics(server: ServerHandle, served: str) -> None:
    with server.client() as http:
        predict(http, f"/models/{served}/versions/1/predict", {"records": ROWS})
        predict(http, f"/models/{served}/versions/1/predict", {"records": [{"x": 1}]}, expect=422)
    with httpx.Client(base_url=server.url, timeout=60) as root:
        text = root.get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("orchestra_predictions_total", model=served, version="1", outcome="ok") >= 1
    assert value("orchestra_predictions_total", model=served, version="1", outcome="invalid") >= 1
    assert value("orchestra_prediction_rows_total", model=served, version="1", outcome="ok") >= 2
    assert value("orchestra_serving_workers", environment="main") >= 1


def test_a_lightgbm_record_of_numbers_answers_as_the_same_rows_in_a_batch(
    server: ServerHandle, http: httpx.Client, served: str
) -> None:
    """A single record of numbers takes the worker's quick way (an array for the booster, no table): its
    answer is the batch's, and what it refuses is refused as on the general way."""
    model = {"name": "sv_lgbm_model", "modulePath": "lightgbm", "class": "LGBMClassifier",
             "classParameters": {"n_estimators": 20, "verbose": -1}}  # fmt: skip
    run(server, http, "/model/scikitlearn", model)
    fit = {"name": "sv_lgbm", "parentName": "sv_lgbm_model", "method": "fit",
           "methodParameters": {"X": "$mr_X", "y": "$mr_y.species"}}  # fmt: skip
    run(server, http, "/train/scikitlearn", fit)
    register(http, "sv_lgbm", "sv_lgbm")
    batch = predict(http, "/models/sv_lgbm/predict", {"records": ROWS})["result"]
    for index, row in enumerate(ROWS):
        one = predict(http, "/models/sv_lgbm/predict", {"record": row})["result"]
        assert one["predictions"] == [batch["predictions"][index]] and one["classes"] == SPECIES
        assert np.allclose(one["probabilities"], [batch["probabilities"][index]])
    missing_value = predict(http, "/models/sv_lgbm/predict", {"record": {**ROWS[0], "petal_width": None}})
    assert missing_value["result"]["predictions"][0] in SPECIES  # LightGBM takes a missing value
    wrong = predict(http, "/models/sv_lgbm/predict", {"record": {**ROWS[0], "petal_width": "wide"}}, expect=422)
    assert "petal_width" in wrong["error"]["message"]
    extra = predict(http, "/models/sv_lgbm/predict", {"record": {**ROWS[0], "colour": 1}}, expect=422)
    assert "unknown column(s) ['colour']" in extra["error"]["message"]
