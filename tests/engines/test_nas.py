"""The nas service and automl/nas through a real server and real workers, on scikit-learn's digits:
generate, train and evaluate as separate steps (evaluate re-executed by PATCH gives the same metrics), a
constraint rejecting an over-budget network, and the scheduler driving child steps -- with ONE worker
slot, which would deadlock if the driver held a slot -- visible in the lineage, with the comparison table
as a dataset step and a PNG artifact; under authentication the driver uses its short-lived job token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from automl_orchestra.nas.spec import footprint
from tests.api.helpers import content, post, run, upload_digits, wait_for_status
from tests.conftest import ServerHandle, launch

SPACE = {"inputShape": [1, 8, 8], "classes": 10, "control": {"epochs": 1, "batchSize": 32}}
# Identical across runs of the same step: everything but timings.
STABLE_METRICS = ("accuracy", "loss", "score", "parameters", "multiplyAdds", "testRows", "onnxMaxAbsDiff")


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server with a single worker slot: a driver holding it would starve its own children."""
    handle = launch(tmp_path_factory.mktemp("nas-one-slot"), ORCHESTRA_WORKERS="1")
    with handle.client() as http:
        upload_digits(handle, http, tmp_path_factory.mktemp("nas-data"))
    yield handle
    handle.stop()


def test_decoupled_generate_train_evaluate_and_patch_evaluate(one_slot: ServerHandle) -> None:
    with one_slot.client() as http:
        generated = run(one_slot, http, "/nas/generate", {"name": "g1", "generator": "random", "space": SPACE})
        assert generated["generator"] == "random" and generated["trial"] == 1
        spec = content(http, "/nas/generate/g1")[1]["spec"]
        assert spec["specVersion"] == 1 and spec["input"]["shape"] == [1, 8, 8] and spec["control"]["epochs"] == 1
        trained = run(one_slot, http, "/nas/train", {"name": "t1", "spec": "$g1.spec", "data": "$digits"})
        assert trained["epochs"] == 1 and len(trained["curves"]) == 1 and trained["rejected"] is None
        assert trained["instrumentation"]["parameters"] == trained["instrumentation"]["specParameters"] > 0
        first = run(one_slot, http, "/nas/evaluate", {"name": "e1", "parentName": "t1", "data": "$digits"})
        metrics = first["metrics"]
        assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["testRows"] == 359
        assert metrics["onnxMaxAbsDiff"] < 1e-4 and metrics["latencyMsPerSample"] > 0 and metrics["peakMemoryMb"] > 0
        assert metrics["multiplyAdds"] > 0 and first["onnx"] == "model.onnx"
        names = {item["name"] for item in http.get("/steps/e1/artifacts").json()["result"]}
        assert {"model.onnx", "curves.png"} <= names

        response = http.patch("/steps/e1", json={})
        assert response.status_code == 200, response.text
        again = one_slot.wait("e1")
        assert again["status"] == "finished" and again["run"] == 2
        assert {k: again["metrics"][k] for k in STABLE_METRICS} == {k: metrics[k] for k in STABLE_METRICS}
        parents = {(e["parent"], e["child"]) for e in http.get("/lineage/e1").json()["result"]["edges"]}
        assert {("g1", "t1"), ("t1", "e1"), ("digits", "t1"), ("digits", "e1")} <= parents


def test_constraint_rejects_an_over_budget_network_and_bad_specs_get_422(one_slot: ServerHandle) -> None:
    network = {
        "specVersion": 1,
        "input": {"shape": [1, 8, 8]},
        "output": {"classes": 10},
        "layers": [{"type": "conv2d", "filters": 16, "kernel": 3}, {"type": "flatten"}],
        "control": {"epochs": 1},
    }
    with one_slot.client() as http:
        body = {"name": "big", "spec": network, "data": "$digits", "constraints": {"maxParameters": 1000}}
        trained = run(one_slot, http, "/nas/train", body)
        assert "parameters 10410 > maxParameters 1000" in trained["rejected"] and trained["epochs"] == 0
        evaluated = run(one_slot, http, "/nas/evaluate", {"name": "big_eval", "parentName": "big", "data": "$digits"})
        assert evaluated["metrics"]["rejected"] == 1 and evaluated["metrics"]["score"] == 0.0

        body = {"name": "small_gen", "generator": "random", "space": SPACE, "constraints": {"maxParameters": 3000}}
        generated = run(one_slot, http, "/nas/generate", body)  # over-budget proposals are redrawn first
        spec = content(http, "/nas/generate/small_gen")[1]["spec"]
        assert footprint(spec).parameters <= 3000 and generated["redraws"] >= 0

        broken = {**network, "layers": [{"type": "dense", "units": 8}]}  # dense on an image: shapes do not chain
        response = post(http, "/nas/train", {"name": "broken", "spec": broken, "data": "$digits"}, expect=422)
        assert "dense needs a flat input" in response.text
        response = post(
            http, "/nas/train", {"name": "broken", "spec": {**network, "specVersion": 9}, "data": "$digits"}, expect=422
        )
        assert "specVersion" in response.text
        post(
            http, "/automl/nas", {"name": "bad", "parentName": "digits", "generators": ["random", "random"]}, expect=422
        )
        failed = run(
            one_slot, http, "/automl/nas", {"name": "bad", "parentName": "digits", "generators": ["nope"]}, "failed"
        )
        assert "unknown generator(s) ['nope']" in failed["error"]["reason"]


def test_scheduler_runs_trials_as_child_steps_with_one_worker_slot(one_slot: ServerHandle) -> None:
    body = {
        "name": "search",
        "parentName": "digits",
        "generators": ["random", "evolution"],
        "trials": 2,
        "timeBudget": 120,
        "control": {"epochs": 1, "batchSize": 32},
        "constraints": {"maxParameters": 20000},
        "generatorOptions": {"evolution": {"populationSize": 1, "sampleSize": 1}},
    }
    with one_slot.client() as http:
        document = run(one_slot, http, "/automl/nas", body)
        assert document["metrics"]["trials"] == 4 and document["plot"] == "comparison.png"
        edges = http.get("/lineage/search").json()["result"]["edges"]
        children = {e["child"] for e in edges if e["parent"] == "search" and e["reference"] == "(driver)"}
        phases = ("generate", "train", "evaluate")
        assert children == {f"search-{g}-{t}-{p}" for g in ("random", "evolution") for t in (1, 2) for p in phases}
        board = content(http, "/dataset/leaderboard/search_leaderboard")[1:]
        assert [(row["generator"], row["trial"]) for row in board] == [
            ("random", 1), ("random", 2), ("evolution", 1), ("evolution", 2)
        ]  # fmt: skip
        for row in board:
            assert row["status"] == "finished" and (row["rejected"] or row["parameters"] <= 20000)
        table = content(http, "/dataset/comparison/search_comparison")[1:]
        assert [row["generator"] for row in table] == ["random", "evolution"] and all(r["trials"] == 2 for r in table)
        png = http.get("/steps/search/artifacts/comparison.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        # the evolved trial 2 is a mutation of trial 1 (population of one): it reads the history
        genomes = [content(http, f"/nas/generate/search-evolution-{t}-generate")[1]["genome"] for t in (1, 2)]
        assert sum(genomes[0][key] != genomes[1][key] for key in genomes[0]) == 1


def test_cancelling_a_search_cancels_its_trial_under_way(one_slot: ServerHandle) -> None:
    body = {
        "name": "doomed",
        "parentName": "digits",
        "generators": ["random"],
        "trials": 5,
        "timeBudget": 600,
        "control": {"epochs": 200, "batchSize": 32},
    }
    with one_slot.client() as http:
        post(http, "/automl/nas", body)
        child = "doomed-random-1-train"
        wait_for_status(http, child, "running")
        post(http, "/steps/doomed/cancel", {}, expect=200)
        assert one_slot.wait("doomed")["status"] == "cancelled"
        trial = one_slot.wait(child)
        assert trial["status"] == "cancelled" and trial["error"]["reason"] == "its driver 'doomed' was cancelled"


def test_driver_uses_a_job_token_when_auth_is_on(auth_server: ServerHandle, tmp_path: Path) -> None:
    with auth_server.client() as http:
        upload_digits(auth_server, http, tmp_path)
        body = {
            "name": "secure_search",
            "parentName": "digits",
            "generators": ["tpe"],
            "trials": 1,
            "control": SPACE["control"],
        }
        document = run(auth_server, http, "/automl/nas", body)
        assert document["metrics"]["trials"] == 1
        creator = http.get("/steps/secure_search-tpe-1-train").json()["result"]
        assert creator["status"] == "finished" and "secure_search" in creator["parents"]
    with auth_server.client(token="job1.secure_search.9999999999.0000") as forged:
        assert forged.get("/steps").status_code == 401
