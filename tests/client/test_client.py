"""The modern Client against a real server: creation, upload, content, runs, logs, artifacts, lineage,
observe / wait / events, update (PATCH), delete, cancel, typed errors and authentication."""

from __future__ import annotations

import builtins
import time
from pathlib import Path
from typing import Any

import pytest

from automl_orchestra.client import (
    SETTLED_STATUSES,
    AuthenticationError,
    Client,
    ConflictError,
    ConnectionError,
    NotFoundError,
    OrchestraError,
    PermissionDeniedError,
    ServerError,
    StepFailedError,
    ValidationError,
    WaitTimeoutError,
    iter_sse,
    name_from_url,
)
from automl_orchestra.client.errors import error_from_response

SLEEPER = "import time\ntime.sleep(30)\nresponse = None\n"


def _model(client: Client, name: str, **class_parameters: Any) -> str:
    return client.create(
        "model",
        "scikitlearn",
        name=name,
        modulePath="sklearn.linear_model",
        classParameters=class_parameters or {"max_iter": 200},
        **{"class": "LogisticRegression"},
    )


ROWS = 60  # rows of the conftest's csv_file


def _dataset(client: Client, name: str, csv_file: Path) -> dict[str, Any]:
    assert client.upload("dataset", "csv", name, csv_file) == name
    return client.wait(name, timeout=120)


# ----- no server needed ------------------------------------------------------------------------------


def test_sse_parser_handles_events_comments_and_multiline_data() -> None:
    lines = [
        ": keep-alive",
        "",
        "event: status",
        'data: {"name": "a", "status": "running"}',
        "",
        "id: 7",
        "data: first",
        "data: second",
        "",
        "event: status",
        'data: {"name": "a", "status": "finished"}',
    ]  # the last event has no blank line: it is still delivered at the end of the stream
    events = list(iter_sse(lines))
    assert events == [
        {"event": "status", "data": {"name": "a", "status": "running"}, "id": None},
        {"event": "message", "data": "first\nsecond", "id": "7"},
        {"event": "status", "data": {"name": "a", "status": "finished"}, "id": "7"},
    ]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (422, ValidationError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_error_documents_become_typed_exceptions(status: int, cls: type[OrchestraError]) -> None:
    body = {"result": "the message", "error": {"status": status, "code": "c", "message": "the message", "details": [1]}}
    error = error_from_response(status, body)
    assert type(error) is cls
    assert (str(error), error.status, error.code, error.details) == ("the message", status, "c", [1])
    # a body that is not the server's error document still gives a readable message
    assert str(error_from_response(status, None, "<html>proxy error</html>")) == "<html>proxy error</html>"
    assert str(error_from_response(status, {"detail": "Not Found"})) == "Not Found"


def test_wait_errors_are_also_builtin_exceptions() -> None:
    timeout = WaitTimeoutError("x", 1.5, {"name": "x", "status": "running"})
    assert isinstance(timeout, TimeoutError) and isinstance(timeout, OrchestraError)
    assert "running" in str(timeout)
    failed = StepFailedError({"name": "x", "status": "failed", "error": {"reason": "boom", "exception": "E: boom"}})
    assert failed.reason == "boom" and failed.step_status == "failed" and "boom" in str(failed)


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRA_URL", "http://example.invalid:9000/api/v1/")
    monkeypatch.setenv("ORCHESTRA_TOKEN", "secret")
    with Client() as client:
        assert client.url == "http://example.invalid:9000"
        assert client.token == "secret"
    with Client("localhost:8080", token="") as client:  # an explicit empty token means none
        assert client.url == "http://localhost:8080" and not client.token
    assert name_from_url("/api/v1/model/scikitlearn/lr") == "lr"


def test_unreachable_server_raises_connection_error() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ConnectionError) as info:
        client.health()
    assert isinstance(info.value, builtins.ConnectionError)
    assert "127.0.0.1:9" in str(info.value)


# ----- against the real server ------------------------------------------------------------------------


def test_health(client: Client) -> None:
    health = client.health()
    assert health["status"] == "ok" and health["version"]


def test_upload_content_pages_and_queries(client: Client, uid: str, csv_file: Path) -> None:
    name = f"{uid}_data"
    metadata = _dataset(client, name, csv_file)
    assert metadata["status"] == "finished" and metadata["finished"] is True
    assert metadata["name"] == name and (metadata["service"], metadata["tool"]) == ("dataset", "csv")
    assert metadata.get("rowCount") == ROWS

    page = client.content("dataset", "csv", name, skip=10, limit=5)
    assert page[0]["name"] == name and len(page) == 6
    assert set(page[1]) == {"x1", "x2", "color", "label"}

    reds = client.content("dataset", "csv", name, limit=100, query={"color": "red"})
    assert len(reds) == 1 + ROWS // 3
    assert all(row["color"] == "red" for row in reds[1:])

    assert client.get(name)["status"] == "finished"
    assert client.exists(name) and not client.exists(f"{uid}_missing")
    assert name in {step["name"] for step in client.list_tool("dataset", "csv")}


def test_list_filters_by_service_and_status(client: Client, uid: str, csv_file: Path) -> None:
    name = f"{uid}_data"
    _dataset(client, name, csv_file)
    datasets = client.list(service="dataset")
    assert datasets and all(step["service"] == "dataset" for step in datasets)
    assert name in {step["name"] for step in client.iter_steps(service="dataset")}
    finished = client.list(status="finished")
    assert all(step["status"] == "finished" for step in finished)
    assert name in {step["name"] for step in client.list(service="dataset", status="finished", limit=1000)}
    assert name in {step["name"] for step in client.list(service="dataset", tool="csv", limit=1000)}


def test_function_logs_runs_content_and_lineage(client: Client, uid: str, csv_file: Path) -> None:
    data = f"{uid}_data"
    _dataset(client, data, csv_file)
    name = client.create_step(
        "function",
        "python",
        {
            "name": f"{uid}_fn",
            "parameters": {"table": f"${data}", "price": "$$5"},
            "code": (
                "import sys\n"
                "print('hello-out')\n"
                "print('hello-err', file=sys.stderr)\n"
                "response = {'rows': len(table), 'price': price}\n"
            ),
        },
    )
    metadata = client.wait(name, timeout=120)
    assert metadata["status"] == "finished"
    assert client.content("function", "python", name)[1] == {"rows": ROWS, "price": "$5"}

    logs = client.logs(name)
    assert logs["run"] == 1 and "hello-out" in logs["stdout"] and "hello-err" in logs["stderr"]
    assert "hello-out" in client.logs(name, run=1)["stdout"]

    runs = client.runs(name)
    assert len(runs) == 1 and runs[0]["run"] == 1 and runs[0]["status"] == "finished"
    assert runs[0]["wallS"] is not None

    graph = client.lineage(name)
    assert {node["name"] for node in graph["nodes"]} >= {data, name}
    assert any(edge["parent"] == data and edge["child"] == name for edge in graph["edges"])
    assert data in metadata["parents"]


def test_artifacts_list_and_download(client: Client, uid: str, csv_file: Path, tmp_path: Path) -> None:
    name = f"{uid}_data"
    _dataset(client, name, csv_file)
    artifacts = client.artifacts(name)
    assert artifacts, "a finished dataset has output files"
    first = artifacts[0]
    target = client.download(name, first["name"], tmp_path)
    assert target.parent == tmp_path and target.stat().st_size == first["size"]
    assert client.read_artifact(name, first["name"]) == target.read_bytes()
    with pytest.raises(NotFoundError):
        client.read_artifact(name, "no-such-file.bin")
    assert not list(tmp_path.glob("*.part"))


def test_observe_wait_and_events(client: Client, uid: str) -> None:
    name = client.create("function", "python", name=f"{uid}_slow", code="import time\ntime.sleep(1.5)\nresponse = 7\n")
    first = client.observe(name, timeout=0)  # returns at once: not settled yet
    assert first["status"] in {"pending", "running"}
    statuses = [event["status"] for event in client.status_events(name, timeout=120)]
    assert statuses and statuses[-1] == "finished"
    assert all(status not in SETTLED_STATUSES for status in statuses[:-1])
    seen: list[str] = []
    metadata = client.wait(name, timeout=60, on_update=lambda m: seen.append(m["status"]))
    assert metadata["status"] == "finished" and seen == ["finished"]
    # the stream of a settled step sends its state once and ends
    events = list(client.events(name, timeout=60))
    assert [event["event"] for event in events] == ["status"]
    assert events[0]["data"]["status"] == "finished"


def test_failing_step_raises_step_failed(client: Client, uid: str) -> None:
    name = client.create("function", "python", name=f"{uid}_boom", code="raise ValueError('boom-1234')\n")
    with pytest.raises(StepFailedError) as info:
        client.wait(name, timeout=120)
    error = info.value
    assert error.step_status == "failed" and error.metadata["name"] == name
    assert "boom-1234" in str(error)
    assert error.metadata["error"] is not None
    metadata = client.wait(name, timeout=10, raise_on_failure=False)
    assert metadata["status"] == "failed" and metadata["finished"] is False
    assert client.runs(name)[-1]["status"] == "failed"


def test_wait_timeout_then_cancel(client: Client, uid: str) -> None:
    name = client.create("function", "python", name=f"{uid}_sleeper", code=SLEEPER)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        client.wait(name, timeout=1)
    assert time.monotonic() - started < 10
    assert isinstance(info.value, TimeoutError)
    assert info.value.metadata is not None and info.value.metadata["status"] in {"pending", "running"}

    client.cancel(name)
    with pytest.raises(StepFailedError) as failed:
        client.wait(name, timeout=60)
    assert failed.value.step_status == "cancelled"
    assert client.get(name)["status"] == "cancelled"


def test_update_makes_dependents_stale_and_cascade_reruns_them(client: Client, uid: str, csv_file: Path) -> None:
    data = f"{uid}_data"
    _dataset(client, data, csv_file)
    features = client.create("transform", "projection", name=f"{uid}_X", parentName=data, fields=["x1", "x2"])
    model = _model(client, f"{uid}_model")
    client.wait(features, timeout=120)
    client.wait(model, timeout=120)
    trained = client.create(
        "train",
        "scikitlearn",
        name=f"{uid}_trained",
        parentName=model,
        method="fit",
        methodParameters={"X": f"${features}", "y": f"${data}.label"},
    )
    assert client.wait(trained, timeout=120)["status"] == "finished"
    assert set(client.get(trained)["parents"]) == {model, features, data}

    url = client.update(model, classParameters={"max_iter": 300})
    assert name_from_url(url) == model
    assert client.wait(model, timeout=120)["runs"] == 2
    assert client.get(model)["parameters"]["classParameters"] == {"max_iter": 300}
    assert client.get(trained)["status"] == "stale"
    assert client.wait(trained, timeout=10)["status"] == "stale"  # stale is settled, not a failure

    client.update(model, {"classParameters": {"max_iter": 400}}, cascade=True)
    client.wait(model, timeout=120)
    metadata = client.wait(trained, timeout=120)
    assert metadata["status"] == "finished" and metadata["runs"] == 2


def test_delete_refuses_while_dependents_exist(client: Client, uid: str, csv_file: Path) -> None:
    data = f"{uid}_data"
    _dataset(client, data, csv_file)
    child = client.create("transform", "projection", name=f"{uid}_proj", parentName=data, fields=["x1", "x2"])
    client.wait(child, timeout=120)
    with pytest.raises(ConflictError) as info:
        client.delete(data)
    assert info.value.status == 409 and info.value.code == "conflict"
    assert client.get(data)["status"] == "finished"
    message = client.delete(data, cascade=True)
    assert isinstance(message, str)
    for name in (data, child):
        with pytest.raises(NotFoundError):
            client.get(name)


def test_typed_errors(client: Client, uid: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get(f"{uid}_nothing")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert f"{uid}_nothing" in str(missing.value)

    with pytest.raises(NotFoundError):
        client.wait(f"{uid}_nothing", timeout=1)

    name = _model(client, f"{uid}_dup")
    with pytest.raises(ConflictError) as duplicate:
        _model(client, name)
    assert duplicate.value.status == 409

    with pytest.raises(ValidationError) as bad_name:
        _model(client, "1-not-a-name")
    assert bad_name.value.status in {400, 422}

    with pytest.raises(ValidationError):  # projection without its required fields
        client.create("transform", "projection", name=f"{uid}_proj")

    with pytest.raises(ValidationError) as forbidden_module:
        client.create("model", "scikitlearn", name=f"{uid}_os", modulePath="os", **{"class": "system"})
    assert "os" in str(forbidden_module.value)

    with pytest.raises(ValidationError):  # a malformed reference is refused at POST time
        client.create("function", "python", name=f"{uid}_ref", code="response = 1", parameters={"a": "$1bad"})

    with pytest.raises((NotFoundError, ValidationError)):  # a reference to a step that does not exist
        client.create("function", "python", name=f"{uid}_ref2", code="response = 1", parameters={"a": f"${uid}_no"})

    with pytest.raises(NotFoundError):
        client.create("model", "no_such_tool", name=f"{uid}_x")

    with pytest.raises(NotFoundError):
        client.delete(f"{uid}_nothing")


def test_json_dataset_needs_a_source(client: Client, uid: str) -> None:
    with pytest.raises(ValidationError) as info:
        client.create("dataset", "csv", name=f"{uid}_nosource")
    assert "url" in str(info.value)


def test_authentication_and_roles(auth_server: Any, uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRA_TOKEN", raising=False)
    with Client(auth_server.url, token="") as anonymous, pytest.raises(AuthenticationError) as info:
        anonymous.list()
    assert info.value.status == 401
    with Client(auth_server.url, token="not-a-token") as unknown, pytest.raises(AuthenticationError):
        unknown.list()

    with Client(auth_server.url, token="viewer-token") as viewer:
        assert isinstance(viewer.list(), list)
        with pytest.raises(PermissionDeniedError) as denied:
            _model(viewer, f"{uid}_viewer")
        assert denied.value.status == 403

    with Client(auth_server.url, token="editor-token") as editor:
        assert _model(editor, f"{uid}_editor") == f"{uid}_editor"
        with pytest.raises(PermissionDeniedError):  # code steps need a code role (admin by default)
            editor.create("function", "python", name=f"{uid}_code", code="response = 1")

    monkeypatch.setenv("ORCHESTRA_TOKEN", "admin-token")
    with Client(auth_server.url) as admin:
        assert admin.get(f"{uid}_editor")["name"] == f"{uid}_editor"
        assert admin.create("function", "python", name=f"{uid}_code", code="response = 1") == f"{uid}_code"
        assert admin.wait(f"{uid}_code", timeout=120)["status"] == "finished"
