"""Hostile input over the real server: every case answers a 4xx JSON error that says why -- never a 500 --
and the listings still answer 200 afterwards."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx

from automl_orchestra.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH
from automl_orchestra.contracts.outputs import CUT, MAX_OUTPUT_DEPTH
from automl_orchestra.contracts.parameters import MAX_ITEMS
from tests.api.helpers import post, upload
from tests.conftest import ServerHandle

MODEL = {"modulePath": "sklearn.linear_model", "class": "LogisticRegression"}


def refused(response: httpx.Response, status: int, *phrases: str) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]["message"]
    for phrase in phrases:
        assert phrase in message, message
    return message


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def listings_answer(http: httpx.Client) -> None:
    """The listings of the issue answer 200 (one deep step used to break them all)."""
    if http.get("/steps/hi_anchor").status_code == 404:
        post(http, "/model/scikitlearn", {"name": "hi_anchor", **MODEL})
    for url in ("/steps", "/model/scikitlearn", "/steps/hi_anchor", "/steps/hi_anchor/runs", "/lineage/hi_anchor"):
        response = http.get(url)
        assert response.status_code == 200, (url, response.text)


def test_deeply_nested_parameter_is_refused(http: httpx.Client) -> None:
    body = {"name": "hi_deep", **MODEL, "classParameters": {"C": nested(300)}}
    refused(http.post("/model/scikitlearn", json=body), 422, f"at most {MAX_JSON_DEPTH} levels")
    assert http.get("/steps/hi_deep").status_code == 404
    listings_answer(http)


def test_body_size_is_capped(http: httpx.Client) -> None:
    body = {"name": "hi_big", "parentName": "hi_anchor", "fields": ["x"] * 2_097_152}
    refused(http.post("/transform/projection", json=body), 413, str(MAX_BODY_BYTES), "bytes")
    many = {"name": "hi_many", "parentName": "hi_anchor", "fields": ["x"] * (MAX_ITEMS + 1)}
    refused(http.post("/transform/projection", json=many), 422, f"at most {MAX_ITEMS}")
    assert http.get("/steps/hi_big").status_code == 404 and http.get("/steps/hi_many").status_code == 404
    listings_answer(http)


def test_skip_out_of_range(http: httpx.Client) -> None:
    listings_answer(http)
    for url in ("/steps", "/model/scikitlearn", "/model/scikitlearn/hi_anchor"):
        refused(http.get(url, params={"skip": "9223372036854775808"}), 422, "skip")
    refused(http.get("/steps/hi_anchor/logs", params={"run": "9223372036854775808"}), 422, "run")
    listings_answer(http)


def test_query_value_of_another_type(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "classes.csv"
    source.write_text("Pclass,Sex\n3,male\n1,female\n3,female\n")
    upload(http, "hi_classes", source)
    assert server.wait("hi_classes")["status"] == "finished"
    url = "/dataset/csv/hi_classes"
    refused(http.get(url, params={"query": '{"Pclass": "3"}'}), 422, "do not match", "'Pclass'", "int64")
    refused(http.get(url, params={"query": '{"Sex": 1}'}), 422, "'Sex'")
    rows = http.get(url, params={"query": '{"Pclass": 3}'})
    assert rows.status_code == 200 and len(rows.json()["result"]) == 3  # the metadata and two rows
    refused(http.get(url, params={"query": "[" * 5000}), 422, f"at most {MAX_JSON_DEPTH} levels")
    listings_answer(http)


def test_nul_bytes_are_refused(http: httpx.Client) -> None:
    body = {"name": "hi_nul", "path": "/tmp/data\u0000.csv"}
    refused(http.post("/dataset/csv", json=body), 422, "NUL")
    refused(http.post("/model/scikitlearn", json={"name": "hi_nul", **MODEL, "description": "a\u0000b"}), 422, "NUL")
    refused(http.get("/steps/hi%00nul"), 422, "NUL")
    refused(http.get("/steps", params={"service": "model\u0000"}), 422, "NUL")
    listings_answer(http)


def test_deeply_nested_dataset_body_is_refused(http: httpx.Client) -> None:
    text = '{"name": "hi_nest", "url": "https://example.org/a.csv", "columns": ' + "[" * 5000 + "]" * 5000 + "}"
    response = http.post("/dataset/csv", content=text, headers={"content-type": "application/json"})
    refused(response, 422, "5001 levels", f"at most {MAX_JSON_DEPTH} levels")
    listings_answer(http)


def test_non_finite_numbers_are_refused(http: httpx.Client) -> None:
    text = json.dumps({"name": "hi_nan", **MODEL, "classParameters": {"C": float("nan")}})
    response = http.post("/model/scikitlearn", content=text, headers={"content-type": "application/json"})
    refused(response, 422, "NaN")
    listings_answer(http)


def test_405_lists_every_allowed_method(http: httpx.Client) -> None:
    listings_answer(http)
    response = http.put("/steps/hi_anchor")
    refused(response, 405, "PUT")
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed, allowed
    response = http.post("/steps")
    refused(response, 405)
    assert "GET" in response.headers["allow"]


def test_patch_cannot_rename(http: httpx.Client) -> None:
    listings_answer(http)
    runs = len(http.get("/steps/hi_anchor/runs").json()["result"])
    refused(http.patch("/steps/hi_anchor", json={"name": "other"}), 422, "a step's name cannot change")
    refused(http.patch("/model/scikitlearn/hi_anchor", json={"modelName": "other"}), 422, "cannot change")
    assert len(http.get("/steps/hi_anchor/runs").json()["result"]) == runs  # no run started
    assert http.get("/steps/other").status_code == 404
    listings_answer(http)


def test_deep_output_of_a_code_step_keeps_every_listing_answering(server: ServerHandle, http: httpx.Client) -> None:
    code = "value = 'leaf'\nfor _ in range(300):\n    value = {'a': value}\nresponse = value\n"
    post(http, "/function/python", {"name": "hi_deep_output", "code": code})
    assert server.wait("hi_deep_output")["status"] == "finished"
    value = http.get("/function/python/hi_deep_output").json()["result"][1]
    depth = 0
    while isinstance(value, dict):
        value, depth = value["a"], depth + 1
    assert value == CUT and depth == MAX_OUTPUT_DEPTH
    for url in ("/steps", "/function/python", "/steps/hi_deep_output", "/steps/hi_deep_output/runs"):
        response = http.get(url)
        assert response.status_code == 200, (url, response.text)
    listings_answer(http)


TS_RAW = b"id,time,x\n" + b"".join(f"{i},{t},{t * 0.1}\n".encode() for i in range(4) for t in range(5))
TS_LABELS = b"id,label\n0,a\n1,b\n2,a\n3,b\n"
ALIASES = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_time_series_parameter_files_are_checked_before_building(server: ServerHandle, http: httpx.Client) -> None:
    """The YAML parameter file: aliases (a billion-values bomb), deep nesting, size, and values a step's
    body refuses all answer 4xx, and nothing they sent stays in the artifact store."""
    cases = {
        "a: " + "[" * 3000 + "]" * 3000: (422, f"nested more than {MAX_JSON_DEPTH} levels deep"),
        "extract_features:\n  default_fc_parameters:\n    " + ALIASES.replace("\n", "\n    "): (422, "aliases"),
        "tpot: {baselines: [" + ", ".join(["lr"] * 40_000) + "]}": (413, "64 KiB"),
        "pipeline_id: '../../etc'": (422, "pipeline_id"),
        "tpot: {max_time_s: 1.0e+300}": (422, "timeBudget"),
        "- a list": (422, "must be a mapping"),
        "a: !!python/object/apply:os.system ['id']": (422, "neither YAML nor JSON"),
    }
    for params, (status, phrase) in cases.items():
        files = {"params": ("p.yml", params.encode()), "raw_data": ("r.csv", TS_RAW), "labels": ("l.csv", TS_LABELS)}
        refused(http.post("/timeseries/train", files=files), status, phrase)
    assert not list((server.home / "artifacts").glob("steps/ts-*"))
    assert http.get("/timeseries/models").status_code == 200
    listings_answer(http)


def test_delete_racing_patches_answers_4xx(server: ServerHandle, http: httpx.Client) -> None:
    """A cascading DELETE of a parent while two clients re-execute its child (used to be an IntegrityError
    500 on ``edges`` in 4 of 10 trials, and a FileNotFoundError 500 deleting run folders being published)."""
    answers: list[httpx.Response] = []

    def patch(child: str, parent: str) -> None:
        with server.client() as client:
            for n in range(4):
                body = {"classParameters": {"estimator": f"${parent}", "n_estimators": 2 + n}}
                answers.append(client.patch(f"/steps/{child}", json=body))

    def remove(parent: str) -> None:
        with server.client() as client:
            answers.append(client.delete(f"/steps/{parent}", params={"cascade": True}))

    for trial in range(8):
        parent, child = f"hi_race_p{trial}", f"hi_race_c{trial}"
        post(http, "/model/scikitlearn", {"name": parent, **MODEL})
        bagging = {"modulePath": "sklearn.ensemble", "class": "BaggingClassifier"}
        post(http, "/model/scikitlearn", {"name": child, **bagging, "classParameters": {"estimator": f"${parent}"}})
        server.wait(child)
        threads = [threading.Thread(target=patch, args=(child, parent)) for _ in range(2)]
        threads.append(threading.Thread(target=remove, args=(parent,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    unexpected = [
        (r.request.method, r.status_code, r.text[:200]) for r in answers if r.status_code not in (200, 404, 409, 422)
    ]
    assert unexpected == []
    assert {r.status_code for r in answers} & {200} and {r.status_code for r in answers} & {404}
    for trial in range(8):  # what survived settles; nothing is left running
        for name in (f"hi_race_p{trial}", f"hi_race_c{trial}"):
            if http.get(f"/steps/{name}").status_code == 200:
                assert server.wait(name)["status"] in ("finished", "failed", "stale", "cancelled")
    listings_answer(http)
