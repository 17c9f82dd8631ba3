"""The model registry over a real server (SQLite and PostgreSQL): versions frozen at registration, their lineage
and signature, version numbers under concurrent registration, aliases with their history, archive and delete,
every refusal, and the roles (checked before any lookup)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_iris

from tests.api.helpers import post, run, upload
from tests.conftest import ServerHandle

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def iris_csv(path: Path) -> Path:
    """scikit-learn's bundled iris as a CSV with a text target."""
    iris = load_iris()
    lines = [",".join([*FEATURES, "species"])]
    for row, label in zip(iris.data, iris.target, strict=True):
        lines.append(",".join([*(f"{value:g}" for value in row), SPECIES[label]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def make_iris(server: ServerHandle, folder: Path) -> str:
    """The iris table ``mr_iris`` with its feature and target projections ``mr_X`` and ``mr_y`` (made once per
    server: the test modules that use it share the server)."""
    with server.client() as http:
        if http.get("/steps/mr_y").status_code == 200:
            return "mr_iris"
        upload(http, "mr_iris", iris_csv(folder / "iris.csv"))
        assert server.wait("mr_iris")["status"] == "finished"
        run(server, http, "/transform/projection", {"name": "mr_X", "parentName": "mr_iris", "fields": FEATURES})
        run(server, http, "/transform/projection", {"name": "mr_y", "parentName": "mr_iris", "fields": ["species"]})
    return "mr_iris"


@pytest.fixture(scope="module")
def iris(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_iris(server, tmp_path_factory.mktemp("iris"))


def train_tree(server: ServerHandle, http: httpx.Client, name: str, depth: int = 2) -> str:
    """A fitted decision tree ``name`` (its untrained model step is ``{name}_model``)."""
    model = {
        "name": f"{name}_model",
        "modulePath": "sklearn.tree",
        "class": "DecisionTreeClassifier",
        "classParameters": {"max_depth": depth, "random_state": 0},
    }
    run(server, http, "/model/scikitlearn", model)
    body = {
        "name": name,
        "parentName": f"{name}_model",
        "method": "fit",
        "methodParameters": {"X": "$mr_X", "y": "$mr_y.species"},
    }
    run(server, http, "/train/scikitlearn", body)
    return name


def register(http: httpx.Client, model: str, step: str, expect: int = 201, **extra: Any) -> dict[str, Any]:
    response = http.post("/models", json={"name": model, "step": step, **extra})
    assert response.status_code == expect, response.text
    return response.json()


def files_digest(http: httpx.Client, model: str, version: int) -> dict[str, str]:
    """The sha256 of every file of a version, downloaded over HTTP."""
    listing = http.get(f"/models/{model}/versions/{version}/files")
    assert listing.status_code == 200, listing.text
    digests = {}
    for item in listing.json()["result"]:
        response = http.get(f"/models/{model}/versions/{version}/files/{item['name']}")
        assert response.status_code == 200 and len(response.content) == item["size"]
        digests[item["name"]] = hashlib.sha256(response.content).hexdigest()
    return digests


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# ----- registering ---------------------------------------------------------------------------------


def test_a_scikit_learn_version_is_frozen_and_records_its_lineage(
    server: ServerHandle, http: httpx.Client, iris: str
) -> None:
    step = train_tree(server, http, "mr_tree")
    answer = register(http, "iris_tree", step, description="first tree", tags={"team": "bio"})
    version = answer["result"]
    assert version["url"] == "/api/v1/models/iris_tree/versions/1"
    assert version["model"] == "iris_tree" and version["version"] == 1 and version["status"] == "ready"
    assert (version["description"], version["tags"]) == ("first tree", {"team": "bio"})
    assert (version["engine"], version["environment"], version["registeredBy"]) == ("scikitlearn", "main", "admin")
    assert version["output"] == {
        "kind": "object",
        "prefix": "models/iris_tree/1",
        "files": version["files"],
        "environment": "main",
        "serializer": "scikitlearn",
        "attributes": None,
    }
    assert "model.joblib" in version["files"] and version["sizeBytes"] > 0

    source = version["source"]
    runs = http.get(f"/steps/{step}/runs").json()["result"]
    assert (source["step"], source["service"], source["tool"]) == (step, "train", "scikitlearn")
    assert (source["run"], source["runId"]) == (1, runs[0]["id"])
    lineage = version["lineage"]
    assert lineage["parameters"]["methodParameters"] == {"X": "$mr_X", "y": "$mr_y.species"}
    assert lineage["outputHash"] == version["contentHash"]  # the copy is byte for byte the run's output
    inputs = {entry["step"]: entry for entry in lineage["inputs"]}
    assert set(inputs) == {"mr_tree_model", "mr_X", "mr_y"}
    assert inputs["mr_y"]["references"] == ["$mr_y.species"] and inputs["mr_tree_model"]["references"] == ["parentName"]
    for entry in inputs.values():
        assert entry["run"] == 1 and len(entry["outputHash"]) == 64 and entry["changedSince"] is False
    assert lineage["engineMetadata"]["class"].endswith("DecisionTreeClassifier")

    signature = version["signature"]
    assert signature["inputs"] == [{"name": f, "type": "number", "arrowType": "double"} for f in FEATURES]
    assert signature["output"] == {"task": "classification", "target": "species", "classes": SPECIES}
    libraries = version["libraries"]
    assert libraries["installed"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert libraries["savedWith"]["scikit-learn"] == importlib.metadata.version("scikit-learn")

    before = files_digest(http, "iris_tree", 1)
    # Re-running the step changes the step, not the version; a second registration is version 2.
    changed = {"classParameters": {"max_depth": 4, "random_state": 0}}
    response = http.patch(f"/steps/{step}_model", params={"cascade": "true"}, json=changed)
    assert response.status_code == 200, response.text
    assert server.wait(step)["status"] == "finished" and server.wait(step)["run"] == 2
    assert files_digest(http, "iris_tree", 1) == before
    second = register(http, "iris_tree", step)["result"]
    assert second["version"] == 2 and second["source"]["run"] == 2
    assert second["contentHash"] != version["contentHash"]
    assert {e["step"]: e["run"] for e in second["lineage"]["inputs"]}["mr_tree_model"] == 2
    # An older run can be registered by number: version 3 holds run 1's files again.
    third = register(http, "iris_tree", step, run=1)["result"]
    assert (third["version"], third["source"]["run"], third["contentHash"]) == (3, 1, version["contentHash"])
    assert third["lineage"]["engineMetadata"] is None  # the step's metadata describes run 2, not this one
    after_second = files_digest(http, "iris_tree", 2)

    # Deleting the step leaves every version whole.
    assert http.delete(f"/steps/{step}").status_code == 200
    assert files_digest(http, "iris_tree", 1) == before
    assert files_digest(http, "iris_tree", 2) == after_second
    assert http.get("/models/iris_tree/versions/1").json()["result"]["source"]["step"] == step

    model = http.get("/models/iris_tree").json()["result"]
    assert (model["versions"], model["latestVersion"], model["aliases"]) == (3, 3, {})
    listed = http.get("/models/iris_tree/versions", params={"limit": 2}).json()["result"]
    assert [v["version"] for v in listed] == [1, 2]
    assert "iris_tree" in {m["name"] for m in http.get("/models").json()["result"]}


def test_a_flaml_automl_version(server: ServerHandle, http: httpx.Client, iris: str) -> None:
    body = {
        "name": "mr_flaml",
        "parentName": iris,
        "target": "species",
        "task": "classification",
        "timeBudget": 5,
        "seed": 1,
        "options": {"estimator_list": ["lgbm", "rf"]},
    }
    document = run(server, http, "/automl/flaml", body)
    version = register(http, "iris_flaml", "mr_flaml")["result"]
    assert (version["engine"], version["output"]["serializer"]) == ("flaml", "flaml")
    assert version["lineage"]["engineMetadata"]["bestLearner"] == document["bestLearner"]
    assert version["lineage"]["metrics"]["bestScore"] == document["metrics"]["bestScore"]
    assert [entry["step"] for entry in version["lineage"]["inputs"]] == [iris]
    signature = version["signature"]
    assert [column["name"] for column in signature["inputs"]] == document["columns"]["used"] == FEATURES
    assert {column["type"] for column in signature["inputs"]} == {"number"}
    assert signature["output"] == {"task": "classification", "target": "species", "classes": SPECIES}
    installed = version["libraries"]["installed"]
    assert installed["flaml"] == importlib.metadata.version("flaml") and installed["lightgbm"]
    assert version["libraries"]["python"] and version["libraries"]["savedWith"]["flaml"]
    assert version["contentHash"] == version["lineage"]["outputHash"]
    assert http.delete("/steps/mr_flaml", params={"cascade": "true"}).status_code == 200
    assert len(files_digest(http, "iris_flaml", 1)) == len(version["files"])

    # FLAML by method call: the task is fit's own argument, the columns those of X_train.
    run(server, http, "/model/flaml", {"name": "mr_flaml_model", "classParameters": {"estimator_list": ["lgbm"]}})
    arguments = {"X_train": "$mr_X", "y_train": "$mr_y.species", "task": "classification", "time_budget": 2}
    run(
        server,
        http,
        "/train/flaml",
        {"name": "mr_flaml_fit", "parentName": "mr_flaml_model", "methodParameters": arguments},
    )
    trained = register(http, "iris_flaml", "mr_flaml_fit")["result"]
    assert trained["version"] == 2 and trained["engine"] == "flaml"
    assert [column["name"] for column in trained["signature"]["inputs"]] == FEATURES
    assert trained["signature"]["output"] == {"task": "classification", "target": "species", "classes": SPECIES}


def test_a_comparison_registers_its_best_engine_model(server: ServerHandle, http: httpx.Client, iris: str) -> None:
    body = {
        "name": "mr_cmp",
        "parentName": iris,
        "target": "species",
        "task": "classification",
        "timeBudget": 5,
        "engines": ["flaml"],
        "options": {"flaml": {"estimator_list": ["lgbm"]}},
    }
    post(http, "/automl/compare", body)
    document = server.wait("mr_cmp", timeout=240)
    assert document["status"] == "finished", document
    version = register(http, "iris_cmp", "mr_cmp")["result"]
    # The comparison's own output is the winner's model: loaded by the winner's engine, in its environment.
    assert (version["engine"], version["environment"]) == ("flaml", "main")
    assert version["output"]["serializer"] == "flaml" and "compare.json" in version["files"]
    assert version["source"]["step"] == "mr_cmp" and version["contentHash"] == version["lineage"]["outputHash"]
    assert version["lineage"]["compare"]["bestStep"] == document["bestStep"] == "mr_cmp_flaml"
    assert {"mr_cmp_flaml", "mr_cmp_split_holdout"} <= {e["step"] for e in version["lineage"]["inputs"]}
    holdout = next(e for e in version["lineage"]["inputs"] if e["step"] == "mr_cmp_split_holdout")
    assert holdout["owner"] == "mr_cmp_split" and holdout["outputHash"] is None  # derived: no hash of its own
    signature = version["signature"]
    assert [column["name"] for column in signature["inputs"]] == FEATURES
    assert signature["output"] == {"task": "classification", "target": "species", "classes": SPECIES}
    assert "mr_cmp_flaml" in signature["source"]
    assert version["libraries"]["installed"]["flaml"] == importlib.metadata.version("flaml")


def test_library_versions_of_another_environment_come_from_its_own_packages() -> None:
    """Read from the environment's site-packages (nothing imported), not from the server's own."""
    from automl_orchestra.config import Settings
    from automl_orchestra.steps.registry import installed_versions, python_version

    python = Settings().environment_pythons.get("pycaret")
    if python is None:
        pytest.skip("no pycaret environment on this machine")
    versions = installed_versions(("pycaret", "scikit-learn", "no-such-package"), "pycaret", python)
    assert versions["pycaret"] and versions["no-such-package"] is None
    assert versions["scikit-learn"] != importlib.metadata.version("scikit-learn")  # its own pin, not ours
    assert python_version("pycaret", python)
    assert installed_versions(("pycaret",), "missing", None) == {"pycaret": None}


def test_concurrent_registrations_get_distinct_numbers(server: ServerHandle, http: httpx.Client, iris: str) -> None:
    step = train_tree(server, http, "mr_race_tree")
    numbers: list[int] = []
    failures: list[str] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        with server.client() as own:
            barrier.wait()
            response = own.post("/models", json={"name": "iris_race", "step": step})
            if response.status_code == 201:
                numbers.append(response.json()["result"]["version"])
            else:
                failures.append(response.text)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and sorted(numbers) == [1, 2, 3, 4, 5, 6]
    versions = http.get("/models/iris_race/versions").json()["result"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5, 6]
    assert len({v["output"]["prefix"] for v in versions}) == 6


# ----- aliases, archive, delete --------------------------------------------------------------------


def test_aliases_move_with_history_and_protect_their_version(
    server: ServerHandle, http: httpx.Client, iris: str
) -> None:
    step = train_tree(server, http, "mr_alias_tree")
    for _ in range(2):
        register(http, "iris_alias", step)

    def put(alias: str, version: int, expect: int = 200) -> dict[str, Any]:
        response = http.put(f"/models/iris_alias/aliases/{alias}", json={"version": version})
        assert response.status_code == expect, response.text
        return response.json()

    assert put("champion", 1)["result"]["previous"] is None
    assert put("champion", 2)["result"]["previous"] == 1
    assert put("champion", 2)["result"]["previous"] == 2  # no move: nothing recorded
    assert put("champion", 1)["result"]["previous"] == 2  # roll back
    put("staging", 2)
    resolved = http.get("/models/iris_alias@champion").json()["result"]
    assert (resolved["version"], resolved["resolvedFrom"]) == (1, "iris_alias@champion")
    assert http.get("/models/iris_alias/aliases/champion").json()["result"]["version"] == 1
    assert http.get("/models/iris_alias").json()["result"]["aliases"] == {"champion": 1, "staging": 2}
    assert http.get("/models/iris_alias/versions/1").json()["result"]["aliases"] == ["champion"]
    history = http.get("/models/iris_alias/aliases/champion/history").json()["result"]
    assert [(h["action"], h["fromVersion"], h["toVersion"], h["role"]) for h in history] == [
        ("set", None, 1, "admin"),
        ("moved", 1, 2, "admin"),
        ("moved", 2, 1, "admin"),
    ]
    assert all(h["at"] for h in history)

    # A version an alias points to can be neither deleted nor archived; the 409 names the alias.
    refused = http.delete("/models/iris_alias/versions/1")
    assert refused.status_code == 409 and "'champion'" in refused.json()["result"]
    assert refused.json()["error"]["details"] == {"aliases": ["champion"]}
    refused = http.patch("/models/iris_alias/versions/2", json={"status": "archived"})
    assert refused.status_code == 409 and "'staging'" in refused.json()["result"]

    assert http.delete("/models/iris_alias/aliases/staging").status_code == 200
    archived = http.patch("/models/iris_alias/versions/2", json={"status": "archived", "tags": {"why": "old"}})
    assert archived.status_code == 200 and archived.json()["result"]["status"] == "archived"
    assert http.get("/models/iris_alias/versions/2").json()["result"]["tags"] == {"why": "old"}
    assert len(files_digest(http, "iris_alias", 2)) >= 1  # archived versions stay readable
    assert http.get("/models/iris_alias@latest").json()["result"]["version"] == 1
    assert [v["version"] for v in http.get("/models/iris_alias/versions?status=archived").json()["result"]] == [2]
    refused = http.put("/models/iris_alias/aliases/staging", json={"version": 2})
    assert refused.status_code == 409 and "archived" in refused.json()["result"]
    history = http.get("/models/iris_alias/aliases/staging/history").json()["result"]
    assert [(h["action"], h["fromVersion"], h["toVersion"]) for h in history] == [
        ("set", None, 2),
        ("removed", 2, None),
    ]

    # Deleting a version removes its files; its number is never given again.
    assert http.delete("/models/iris_alias/aliases/champion").status_code == 200
    deleted = http.delete("/models/iris_alias/versions/1")
    assert deleted.status_code == 200, deleted.text
    assert http.get("/models/iris_alias/versions/1").status_code == 404
    assert http.get("/models/iris_alias/versions/1/files").status_code == 404
    if not server.env.get("ORCHESTRA_ARTIFACT_URL"):
        assert not (server.home / "artifacts" / "models" / "iris_alias" / "1").exists()
        assert (server.home / "artifacts" / "models" / "iris_alias" / "2").is_dir()
    assert register(http, "iris_alias", step)["result"]["version"] == 3

    changed = http.patch("/models/iris_alias", json={"description": "iris trees", "tags": {"a": "1", "b": "2"}})
    assert changed.status_code == 200
    changed = http.patch("/models/iris_alias", json={"tags": {"a": None}})
    assert changed.json()["result"]["tags"] == {"b": "2"} and changed.json()["result"]["description"] == "iris trees"


# ----- refusals ------------------------------------------------------------------------------------


def test_every_refusal_is_a_clear_4xx(server: ServerHandle, http: httpx.Client, iris: str) -> None:
    step = train_tree(server, http, "mr_refusal_tree")
    register(http, "iris_refusals", step)
    failing = {"name": unique("mr_failing"), "code": "raise ValueError('no model here')"}
    post(http, "/function/python", failing)
    assert server.wait(failing["name"])["status"] == "failed"

    def refused(method: str, path: str, status: int, words: str, **kwargs: Any) -> None:
        response = http.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"]["status"] == status and words in body["result"], body

    refused("POST", "/models", 404, "no step named 'nobody'", json={"name": "m", "step": "nobody"})
    refused("POST", "/models", 409, "is failed", json={"name": "m", "step": failing["name"]})
    refused("POST", "/models", 404, "has no run 7", json={"name": "m", "step": step, "run": 7})
    refused("POST", "/models", 422, "holds a table output", json={"name": "m", "step": "mr_X"})
    refused("POST", "/models", 422, "untrained model", json={"name": "m", "step": f"{step}_model"})
    refused("POST", "/models", 422, "name", json={"name": "9starts-with-a-digit", "step": step})
    refused("POST", "/models", 422, "name", json={"name": "a/b", "step": step})
    refused("POST", "/models", 422, "invalid request", json={"name": "m", "step": step, "extra": 1})
    refused(
        "POST",
        "/models",
        422,
        "at most 50",
        json={"name": "m", "step": step, "tags": {f"t{i}": "v" for i in range(51)}},
    )
    refused("POST", "/models", 422, "invalid tag name", json={"name": "m", "step": step, "tags": {"bad key": "v"}})
    refused("POST", "/models", 422, "at most 1000", json={"name": "m", "step": step, "tags": {"k": "v" * 1001}})
    refused("POST", "/models", 422, "description", json={"name": "m", "step": step, "description": "d" * 10_001})
    refused("POST", "/models", 422, "run", json={"name": "m", "step": step, "run": 0})
    assert http.get("/models/m").status_code == 404  # nothing refused left a model behind

    refused("GET", "/models/nobody", 404, "no model named 'nobody'")
    refused("GET", "/models/nobody@champion", 404, "no model named 'nobody'")
    refused("GET", "/models/iris_refusals/versions/9", 404, "has no version 9")
    refused("GET", "/models/iris_refusals/versions/0", 422, "invalid request")
    refused("GET", "/models/iris_refusals@champion", 404, "has no alias 'champion'")
    refused("GET", "/models/iris_refusals/aliases/champion/history", 404, "never had an alias 'champion'")
    refused("GET", "/models/iris_refusals/versions/1/files/nothing.bin", 404, "has no file 'nothing.bin'")
    refused("PUT", "/models/iris_refusals/aliases/latest", 422, "reserved", json={"version": 1})
    refused("PUT", "/models/iris_refusals/aliases/champion", 404, "has no version 5", json={"version": 5})
    refused("PUT", "/models/iris_refusals/aliases/bad%20alias", 422, "invalid request", json={"version": 1})
    refused("PUT", "/models/nobody/aliases/champion", 404, "no model named 'nobody'", json={"version": 1})
    refused("DELETE", "/models/iris_refusals/aliases/champion", 404, "has no alias 'champion'")
    refused("DELETE", "/models/iris_refusals/versions/4", 404, "has no version 4")
    refused("PATCH", "/models/iris_refusals/versions/1", 422, "status", json={"status": "deleted"})
    refused("PATCH", "/models/iris_refusals", 422, "invalid tag name", json={"tags": {"": "x"}})


# ----- roles ---------------------------------------------------------------------------------------


def test_roles_are_checked_before_any_lookup(auth_server: ServerHandle, tmp_path: Path) -> None:
    editor = {"Authorization": "Bearer editor-token"}
    viewer = {"Authorization": "Bearer viewer-token"}
    with auth_server.client() as admin:
        upload(admin, "ra_iris", iris_csv(tmp_path / "iris.csv"))
        assert auth_server.wait("ra_iris")["status"] == "finished"
        run(auth_server, admin, "/transform/projection", {"name": "mr_X", "parentName": "ra_iris", "fields": FEATURES})
        run(
            auth_server,
            admin,
            "/transform/projection",
            {"name": "mr_y", "parentName": "ra_iris", "fields": ["species"]},
        )
        step = train_tree(auth_server, admin, "ra_tree")
    api = auth_server.api

    version = httpx.post(f"{api}/models", json={"name": "ra_model", "step": step}, headers=editor)
    assert version.status_code == 201 and version.json()["result"]["registeredBy"] == "editor"
    assert httpx.put(f"{api}/models/ra_model/aliases/champion", json={"version": 1}, headers=editor).status_code == 200
    history = httpx.get(f"{api}/models/ra_model/aliases/champion/history", headers=viewer).json()["result"]
    assert history[0]["role"] == "editor"

    # Existing and missing models, versions and steps get the same answer without the right role.
    writes = [
        ("POST", "/models", {"name": "ra_model", "step": step}),
        ("POST", "/models", {"name": "ra_model", "step": "missing"}),
        ("PATCH", "/models/ra_model", {"description": "x"}),
        ("PATCH", "/models/missing", {"description": "x"}),
        ("PATCH", "/models/ra_model/versions/1", {"status": "archived"}),
        ("DELETE", "/models/ra_model/versions/1", None),
        ("DELETE", "/models/missing/versions/1", None),
        ("PUT", "/models/ra_model/aliases/champion", {"version": 1}),
        ("PUT", "/models/missing/aliases/champion", {"version": 1}),
        ("DELETE", "/models/ra_model/aliases/champion", None),
    ]
    for method, path, body in writes:
        for headers, status in (({}, 401), (viewer, 403)):
            response = httpx.request(method, f"{api}{path}", json=body, headers=headers)
            assert response.status_code == status, (method, path, response.text)
    reads = ["/models", "/models/ra_model", "/models/missing", "/models/ra_model@champion", "/models/ra_model/versions",
             "/models/ra_model/versions/1", "/models/missing/versions/1", "/models/ra_model/versions/1/files",
             "/models/ra_model/versions/1/files/model.joblib", "/models/ra_model/aliases",
             "/models/ra_model/aliases/champion/history"]  # fmt: skip
    for path in reads:
        assert httpx.get(f"{api}{path}").status_code == 401, path
        assert httpx.get(f"{api}{path}", headers=viewer).status_code in {200, 404}, path
    assert httpx.get(f"{api}/models/ra_model@champion", headers=viewer).json()["result"]["version"] == 1


def test_the_registry_is_in_the_openapi_document(http: httpx.Client, server: ServerHandle) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=120).json()  # built on first use: slow
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/models"])
    assert {"get", "put", "delete"} <= set(paths["/api/v1/models/{name}/aliases/{alias}"])
    assert "/api/v1/models/{name}/versions/{version}/files/{file}" in paths
    example = paths["/api/v1/models/{name}/versions/{version}"]["get"]["responses"]["200"]["content"]
    assert example["application/json"]["example"]["result"]["signature"]["output"]["task"] == "classification"
