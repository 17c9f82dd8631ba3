"""Every route answers, with JSON bodies, the documented status codes and the mirrored prefix."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from automl_orchestra.contracts import catalog
from tests.api.helpers import content, post, run, upload
from tests.conftest import ServerHandle


def test_openapi_documents_every_route_with_models_and_examples(server: ServerHandle) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=60).json()  # built on first use: ~1 MB
    paths = spec["paths"]
    for name, engine in catalog.TOOLS.items():
        for service in engine.services:
            base = f"/api/v1/{service}/{name}"
            assert base in paths and f"{base}/{{name}}" in paths, base
            if engine.implementation:
                body = paths[base]["post"]["requestBody"]["content"]["application/json"]
                assert "schema" in body
                assert body.get("example") or body.get("examples"), base
    for path in (
        "/api/v1/observe/{name}",
        "/api/v1/observe/{name}/events",
        "/api/v1/lineage/{name}",
        "/api/v1/steps/{name}/runs",
        "/api/v1/steps/{name}/logs",
        "/api/v1/steps/{name}/cancel",
        "/api/v1/steps/{name}/artifacts/{file}",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            success = operation["responses"].get("200") or operation["responses"].get("201")
            content = success["content"]
            documented = any("example" in media or "examples" in media for media in content.values())
            assert documented or path.endswith("{file}"), (method, path)  # downloads are raw bytes
    assert not any(p.startswith("/api/learningOrchestra") for p in paths)  # the mirror is not listed twice
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_learning_orchestra_prefix_mirrors_the_api(server: ServerHandle, http: httpx.Client) -> None:
    run(server, http, "/function/python", {"name": "rt_mirror", "code": "response = 'hi'"})
    mirrored = httpx.get(f"{server.url}/api/learningOrchestra/v1/function/python/rt_mirror").json()["result"]
    assert mirrored[0]["name"] == "rt_mirror" and mirrored[1] == "hi"


def test_create_returns_201_location_and_lists(server: ServerHandle, http: httpx.Client) -> None:
    response = post(http, "/function/python", {"name": "rt_created", "code": "response = None"})
    assert response.json() == {"result": "/api/v1/function/python/rt_created"}
    assert response.headers["location"] == "/api/v1/function/python/rt_created"
    server.wait("rt_created")
    listed = http.get("/function/python").json()["result"]
    assert "rt_created" in [s["name"] for s in listed]
    assert http.get("/steps/rt_created").json()["result"]["finished"] is True


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"code": "response = 1"}, 422, "name: Field required"),
        ({"name": "9bad", "code": "response = 1"}, 422, "name"),
        ({"name": "rt_x", "code": "x", "unknown": 1}, 422, "unknown"),
        ({"name": "rt_x"}, 422, "exactly one of 'code' and 'codeUrl'"),
        ({"name": "rt_x", "code": "x", "parameters": {"a": "$missing_step"}}, 404, "unknown step 'missing_step'"),
        ({"name": "rt_x", "code": "x", "parameters": {"a": "$bad ref"}}, 422, "not a valid reference"),
        ({"name": "rt_x", "codeUrl": "https://evil.example/x.py"}, 422, "not allowed"),
        ({"name": "rt_x", "code": "x", "limits": {"memoryMb": 10**9}}, 422, "memoryMb"),
    ],
)
def test_invalid_bodies_get_clear_4xx(http: httpx.Client, body: dict, status: int, fragment: str) -> None:
    response = http.post("/function/python", json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert fragment in payload["result"] and payload["error"]["status"] == status
    assert http.get("/steps/rt_x").status_code == 404  # nothing was stored


def test_bad_json_unknown_parent_duplicate_name(server: ServerHandle, http: httpx.Client) -> None:
    response = http.post("/model/scikitlearn", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["result"] == "the request body is not valid JSON"
    response = http.post("/train/scikitlearn", json={"name": "rt_t", "parentName": "nobody", "method": "fit"})
    assert response.status_code == 404 and "nobody" in response.json()["result"]
    run(
        server,
        http,
        "/model/scikitlearn",
        {"name": "rt_dup", "modulePath": "sklearn.linear_model", "class": "LogisticRegression"},
    )
    response = http.post(
        "/model/scikitlearn", json={"name": "rt_dup", "modulePath": "sklearn.tree", "class": "DecisionTreeClassifier"}
    )
    assert response.status_code == 409 and "already exists" in response.json()["result"]
    response = http.post("/model/scikitlearn", json={"name": "rt_os", "modulePath": "subprocess", "class": "Popen"})
    assert response.status_code == 422 and "not allowed" in response.json()["result"]


def test_reference_attribute_checked_at_post_when_known(server: ServerHandle, http: httpx.Client) -> None:
    run(server, http, "/function/python", {"name": "rt_dict", "code": "response = {'a': 1, 'b': 2}"})
    ok = http.post(
        "/function/python", json={"name": "rt_attr", "code": "response = a", "parameters": {"a": "$rt_dict.a"}}
    )
    assert ok.status_code == 201
    bad = http.post("/function/python", json={"name": "rt_attr2", "code": "x", "parameters": {"a": "$rt_dict.zzz"}})
    assert bad.status_code == 422 and "no attribute 'zzz'" in bad.json()["result"]
    escaped = run(
        server,
        http,
        "/function/python",
        {"name": "rt_escape", "code": "response = [v, w]", "parameters": {"v": "$$rt_dict", "w": ["$rt_dict.b"]}},
    )
    assert escaped["parents"] == ["rt_dict"]
    assert content(http, "/function/python/rt_escape")[1:] == ["$rt_dict", [2]]


def test_unknown_routes_steps_and_wrong_kind(http: httpx.Client) -> None:
    assert http.get("/nothing/here").status_code == 404
    assert http.get("/steps/does_not_exist").json()["error"]["code"] == "not_found"
    assert http.get("/observe/does_not_exist").status_code == 404
    assert http.get("/lineage/does_not_exist").status_code == 404
    assert http.get("/steps/bad%20name").status_code == 422
    assert http.delete("/model/scikitlearn/does_not_exist").status_code == 404


def test_artifacts_and_logs_and_runs(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "tiny.csv"
    source.write_text("x,y\n1,a\n2,b\n")
    upload(http, "rt_tiny", source)
    server.wait("rt_tiny")
    listing = http.get("/dataset/csv/rt_tiny/artifacts").json()["result"]
    names = [item["name"] for item in listing]
    assert "data.parquet" in names
    download = http.get("/dataset/csv/rt_tiny/artifacts/data.parquet")
    assert download.status_code == 200 and download.content[:4] == b"PAR1"
    assert http.get("/dataset/csv/rt_tiny/artifacts/../../secret").status_code == 404
    assert http.get("/steps/rt_tiny/artifacts/missing.bin").status_code == 404
    assert http.get("/steps/rt_tiny/logs", params={"run": 7}).status_code == 404
    assert http.get("/dataset/csv/rt_tiny/runs").json()["result"][0]["run"] == 1
    assert http.get("/function/python/rt_tiny").status_code == 404  # right name, wrong kind


def test_upload_size_limit_and_media_type(tmp_path: Path) -> None:
    from tests.conftest import launch

    small = launch(tmp_path / "small", ORCHESTRA_MAX_UPLOAD_MB="1")
    try:
        big = tmp_path / "big.csv"
        big.write_bytes(b"a,b\n" + b"1,2\n" * 700_000)
        with small.client() as http:
            with big.open("rb") as handle:
                response = http.post("/dataset/csv", data={"name": "big"}, files={"file": ("big.csv", handle)})
            assert response.status_code == 413
            assert http.get("/steps/big").status_code == 404
            response = http.post("/dataset/csv", content=b"a,b", headers={"content-type": "text/csv"})
            assert response.status_code == 415
    finally:
        small.stop()
