"""The seed's time-series service over HTTP: train (raw series + labels + params) -> steps -> models list ->
predict, surviving a restart; uploads checked before anything is stored; a malformed .ts names its line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.api.helpers import upload
from tests.conftest import ServerHandle
from tests.ts_data import write_long_csv, write_ts

PARAMS = {
    "pipeline_id": "waves",
    "extract_features": {"default_fc_parameters": "minimal"},
    "tpot": {"timeBudget": 12, "generations": 1, "population_size": 4, "cv": 3},
}


def train(http: httpx.Client, raw: Path, labels: Path | None, params: str) -> httpx.Response:
    files = {"raw_data": (raw.name, raw.read_bytes()), "params": ("params.yml", params.encode())}
    if labels is not None:
        files["labels"] = (labels.name, labels.read_bytes())
    return http.post("/timeseries/train", files=files, timeout=180)


def step_names(http: httpx.Client) -> list[str]:
    return [step["name"] for step in http.get("/steps", params={"limit": 1000}).json()["result"]]


def test_train_list_predict_and_restart(fresh_server: ServerHandle, tmp_path: Path) -> None:
    write_long_csv(tmp_path / "raw.csv", tmp_path / "labels.csv", series=40, length=30)
    truth = write_long_csv(
        tmp_path / "new.csv", tmp_path / "new_labels.csv", series=10, length=30, seed=7, first_id=500
    )
    with fresh_server.client(timeout=180) as http:
        response = train(http, tmp_path / "raw.csv", tmp_path / "labels.csv", json.dumps(PARAMS))
        assert response.status_code == 200, response.text
        report = response.json()["result"]
        assert report["modelId"] == "waves" and report["status"] == "finished"
        assert report["mean_cv_accuracy"] >= 0.8 and 0.5 <= report["mean_cv_roc_auc"] <= 1.0  # binary: roc_auc too
        assert report["trainShape"][0] == 40 and "(" in report["modelType"] and report["trainTime"] > 0
        assert report["steps"] == [
            "ts-waves-raw",
            "ts-waves-labels",
            "ts-waves-features",
            "ts-waves-selected",
            "ts-waves",
        ]
        names = step_names(http)
        assert set(report["steps"]) | {"ts-waves_leaderboard"} <= set(names)  # ordinary, visible steps
        assert http.get("/steps/ts-waves/artifacts").json()["result"]  # model and pipeline.py

        assert report["modelVersion"] == {"name": "ts-waves", "version": 1, "url": "/api/v1/models/ts-waves/versions/1"}
        with (tmp_path / "new.csv").open("rb") as handle:
            predicted = http.post("/timeseries/waves/predict", files={"raw_data": ("new.csv", handle)})
        assert predicted.status_code == 200, predicted.text
        assert (predicted.json()["model"], predicted.json()["version"]) == ("ts-waves", 1)
        scores = predicted.json()["result"]
        assert sorted(scores) == sorted(str(i) for i in range(500, 510))
        assert sum(scores[str(500 + i)] == label for i, label in enumerate(truth)) >= 8
        assert step_names(http) == names  # answered by the served version: no step was created
        # The same series through the registry's own route: the version takes the long table as records.
        header, *lines = (tmp_path / "new.csv").read_text().split()
        records = [dict(zip(header.split(","), map(float, line.split(",")), strict=True)) for line in lines]
        records = [{**record, "id": int(record["id"]), "time": int(record["time"])} for record in records]
        served = http.post("/models/ts-waves/predict", json={"records": records})
        assert served.status_code == 200, served.text
        assert (
            dict(zip(map(str, served.json()["result"]["ids"]), served.json()["result"]["predictions"], strict=True))
            == scores
        )
        bad = http.post("/timeseries/waves/predict", files={"raw_data": ("bad.csv", b"id,time,a,b\n1,0,x,1\n")})
        assert bad.status_code == 422 and "numeric" in bad.json()["error"]["message"], bad.text

        again = train(http, tmp_path / "raw.csv", tmp_path / "labels.csv", json.dumps(PARAMS))
        assert again.status_code == 409  # the pipeline id is taken

    fresh_server.restart()
    with fresh_server.client() as http:
        models = http.get("/timeseries/models").json()["result"]
        assert [m["modelId"] for m in models] == ["waves"] and models[0]["mean_cv_accuracy"] >= 0.8
        assert http.post("/timeseries/nope/predict", files={"raw_data": ("x.csv", b"id,time,a\n")}).status_code == 404


def test_labels_that_do_not_match_are_refused_and_nothing_is_stored(fresh_server: ServerHandle, tmp_path: Path) -> None:
    write_long_csv(tmp_path / "raw.csv", tmp_path / "labels.csv", series=10, length=10)
    write_long_csv(tmp_path / "other.csv", tmp_path / "shifted.csv", series=10, length=10, first_id=5)
    with fresh_server.client() as http:
        before = step_names(http)
        response = train(http, tmp_path / "raw.csv", tmp_path / "shifted.csv", "pipeline_id: bad\n")
        assert response.status_code == 422, response.text
        error = response.json()
        assert "labels do not match" in json.dumps(error) and "seriesWithoutLabel" in json.dumps(error)
        assert step_names(http) == before
        assert not list((fresh_server.home / "artifacts").glob("steps/ts-bad*"))
        bad_params = train(http, tmp_path / "raw.csv", tmp_path / "labels.csv", "tpot: {unknown: 1}\n")
        assert bad_params.status_code == 422 and step_names(http) == before


def test_malformed_ts_fails_with_the_line(fresh_server: ServerHandle, tmp_path: Path) -> None:
    good = tmp_path / "waves.ts"
    write_ts(good, series=6, length=10)
    lines = good.read_text().splitlines()
    lines[12] = lines[12].replace(",", ",oops,", 1)
    bad = tmp_path / "bad.ts"
    bad.write_text("\n".join(lines) + "\n")
    with fresh_server.client() as http:
        upload(http, "good_ts", good, tool="timeseries")
        upload(http, "bad_ts", bad, tool="timeseries")
        assert fresh_server.wait("good_ts")["status"] == "finished"
        labels = http.get("/dataset/labels/good_ts_labels").json()["result"]
        assert len(labels) == 7 and labels[1] == {"id": 0, "label": "sine"}  # metadata, then the rows
        failed = fresh_server.wait("bad_ts")
        assert failed["status"] == "failed"
        assert "line 13, dimension 0: 'oops' is not a number" in failed["error"]["reason"]
        # Through the service: the .ts carries its labels; the failing ingest is reported with its line.
        response = train(http, bad, None, "pipeline_id: badts\n")
        assert response.status_code == 422 and "line 13" in response.text
