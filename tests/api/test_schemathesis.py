"""The OpenAPI document against real servers: Schemathesis over every operation, and the request examples.

Two servers: one with tokens (Schemathesis sends the admin, editor and viewer token in turn, and its
``ignored_auth`` check the same request with no and a wrong token) and one in the loopback single-user mode
(no tokens). Every operation of the document goes through Schemathesis' examples and fuzzing phases, and one
operation of each shape (below) through its coverage phase, with a fixed seed and a bound on the examples of
each operation. The bar: no server error, and every answer as the document describes it -- status, content
type, headers and body schema -- with invalid data refused.

The servers are "API only": their engine environments are ``false`` (``ORCHESTRA_ENVIRONMENTS``), so a step
created here is recorded and fails at once ("worker ... did not start") instead of computing; nothing is
downloaded (no allow-listed URL host, no import directory) and one worker slot is used.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData

from automl_orchestra.contracts import catalog
from tests.conftest import TOKENS, ServerHandle, launch

SEED = 20260515
FUZZ_EXAMPLES = 2  # fuzzing examples of each operation; the examples and coverage phases make their own

FALSE = shutil.which("false") or "/bin/false"
API_ONLY = {
    "ORCHESTRA_ENVIRONMENTS": f"main={FALSE},pycaret={FALSE}",
    "ORCHESTRA_WORKERS": "1",
    "ORCHESTRA_WARM_WORKERS": "0",
    "ORCHESTRA_URL_ALLOWLIST": "",
    "ORCHESTRA_IMPORT_DIRS": "",
}
TOKEN_LIST = ",".join(f"{token}:{role}" for token, role in TOKENS.items())
ADMIN = {"Authorization": "Bearer admin-token"}
PREFIX = "/api/v1"

# Known bug, not counted until it is fixed (then set this to False): the request models accept a JSON
# boolean in a number field (pydantic's lax mode turns ``"limits": {"gpus": false}`` into 0.0 and
# ``{"cpus": true}`` into 1: contracts/parameters.py ``Limits``, engines/nas/parameters.py ``NasControl``, every
# int or float field), so Schemathesis' "schema-violating request accepted" fires on such bodies.
TOLERATE_BOOLEANS_IN_NUMBER_FIELDS = True


def negative_data_rejection(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' check that invalid data is refused, but for the known bug above."""
    try:
        return checks.negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        document = case.operation.schema.raw_schema
        operation = document["paths"][case.operation.path][case.operation.method.lower()]
        schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if TOLERATE_BOOLEANS_IN_NUMBER_FIELDS and schema and boolean_in_number_field(case.body, schema, document):
            return None
        raise


def boolean_in_number_field(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether ``value`` holds a boolean where ``schema`` (of ``document``) allows only numbers."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return any(boolean_in_number_field(value, option, document) for option in options)
    if isinstance(value, bool):
        return schema.get("type") in ("integer", "number")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return any(
            boolean_in_number_field(item, properties.get(key, extra if isinstance(extra, dict) else {}), document)
            for key, item in value.items()
        )
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return any(boolean_in_number_field(item, schema["items"], document) for item in value)
    return False


# What every answer is checked for: no 5xx, everything as documented, invalid data refused.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    negative_data_rejection,
    checks.ignored_auth,
]


# ----- servers --------------------------------------------------------------------------------------


def api_only_server(folder: Any, token: str | None = None, **extra: str) -> ServerHandle:
    return launch(folder, token=token, **API_ONLY, **extra)


# Known bugs, not counted until they are fixed (then empty this): when a step is deleted while the scheduler
# records the result of its run, runtime/scheduler.py logs "recording the result of run ... failed" with a
# StaleDataError, and runtime/local.py "could not publish logs of ..." with a FileNotFoundError (the run's
# folder is gone). The clients' answers are right; the server logs a traceback.
KNOWN_TRACEBACKS = ("StaleDataError: UPDATE statement on table 'runs'", "could not publish logs of")


LOG_RECORD = re.compile(r"^(?:\{|[A-Z]+:\s|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")  # a JSON line or a text record


def unexpected_tracebacks(log: str) -> list[str]:
    """The log records of a server log that carry a traceback, but for the known bugs above."""
    records: list[list[str]] = []
    for line in log.splitlines():
        if LOG_RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    texts = ["\n".join(record) for record in records]
    return [text for text in texts if "Traceback" in text and not any(known in text for known in KNOWN_TRACEBACKS)]


def stop_cleanly(handle: ServerHandle) -> None:
    """Stop the server and check it shut down in order (uvicorn re-raises SIGTERM once it has), having
    logged no error with a traceback."""
    process = handle.process
    handle.stop()
    log = (handle.home / "server.log").read_text()
    assert process is not None and process.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
    assert not unexpected_tracebacks(log), "\n\n".join(unexpected_tracebacks(log))[:5000]


@pytest.fixture(scope="module")
def auth_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = api_only_server(tmp_path_factory.mktemp("st-auth"), "admin-token", ORCHESTRA_TOKENS=TOKEN_LIST)
    yield handle
    stop_cleanly(handle)


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = api_only_server(tmp_path_factory.mktemp("st-open"))
    yield handle
    stop_cleanly(handle)


def openapi(server: ServerHandle) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json", timeout=120)  # built on first use: seconds
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in sorted(document["paths"].items()):
        for method, operation in sorted(item.items()):
            yield method.upper(), path, operation


# ----- the document ---------------------------------------------------------------------------------


def test_every_operation_documents_the_errors_it_can_answer(auth_api: ServerHandle, open_api: ServerHandle) -> None:
    """Spot checks of what app.py derives for every operation; Schemathesis checks the rest against answers."""
    with_tokens, without = openapi(auth_api), openapi(open_api)
    assert "bearer" in with_tokens["components"]["securitySchemes"]
    assert "securitySchemes" not in without.get("components", {})
    for document, auth in ((with_tokens, True), (without, False)):
        for method, path, operation in operations(document):
            responses = operation["responses"]
            assert "4XX" not in responses and "422" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            open_route = path in {f"{PREFIX}/health", "/v2", "/v2/health/live", "/v2/health/ready"}
            # A read of a served model (the registry's, the inference protocol's, the seed's time-series pipeline).
            prediction = path.endswith(("/predict", "/infer")) and ("models" in path or "timeseries" in path)
            assert ("401" in responses) == (auth and not open_route), (method, path)
            assert ("security" in operation) == (auth and not open_route), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), (method, path)
            if prediction:
                assert {"413", "422", "429", "503"} <= set(responses), (method, path)
            elif method != "GET" and not open_route:
                assert "409" in responses and ("403" in responses or not auth), (method, path)
        creation = document["paths"][f"{PREFIX}/model/scikitlearn"]["post"]["responses"]
        assert {"201", "403", "404", "409", "503"} <= set(creation)
        assert "415" in document["paths"][f"{PREFIX}/dataset/csv"]["post"]["responses"]
        assert {"413", "429", "503"} <= set(
            document["paths"][f"{PREFIX}/timeseries/{{model_id}}/predict"]["post"]["responses"]
        )
        assert "403" not in document["paths"][f"{PREFIX}/steps/{{name}}"]["get"]["responses"]
    unauthorized = with_tokens["paths"][f"{PREFIX}/steps"]["get"]["responses"]["401"]
    assert "WWW-Authenticate" in unauthorized["headers"]
    assert "HTTPValidationError" not in with_tokens["components"]["schemas"]


# ----- the documented request examples --------------------------------------------------------------


def request_examples(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON request body example of every ``POST /{service}/{tool}``, by path."""
    found = {}
    for method, path, operation in operations(document):
        media = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if method != "POST" or media is None or not _is_step_route(path):
            continue
        example = media.get("example") or media.get("examples", {}).get("example", {}).get("value")
        assert example, f"{path} documents no request example"
        found[path] = example
    return found


def _is_step_route(path: str) -> bool:
    service, _, tool = path.removeprefix(PREFIX + "/").partition("/")
    spec = catalog.tool(tool)
    return spec is not None and service in spec.services


def referenced(value: Any) -> set[str]:
    """The step names a body references: ``parentName``, ``drivenBy`` and every ``"$step..."`` string."""
    names: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("parentName", "drivenBy") and isinstance(item, str):
                names.add(item)
            names |= referenced(item)
    elif isinstance(value, list):
        for item in value:
            names |= referenced(item)
    elif isinstance(value, str) and value.startswith("$") and not value.startswith("$$"):
        names.add(value[1:].split(".", 1)[0])
    return names


def in_dependency_order(examples: dict[str, dict[str, Any]]) -> list[str]:
    """The example paths, each after the examples that create the steps it references."""
    creator = {body["name"]: path for path, body in examples.items()}
    needs = {path: {creator[n] for n in referenced(body) if n in creator} - {path} for path, body in examples.items()}
    ordered: list[str] = []
    while needs:
        ready = sorted(path for path, deps in needs.items() if not deps - set(ordered))
        assert ready, f"the examples reference each other in a circle: {sorted(needs)}"
        ordered += ready
        for path in ready:
            del needs[path]
    return ordered


def stand_in(http: httpx.Client, name: str) -> None:
    """A dataset step named ``name`` (an upload; on an API-only server it fails at once, as every step does)."""
    files = {"file": ("stand_in.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv")}
    response = http.post("/dataset/csv", data={"name": name}, files=files)
    assert response.status_code == 201, response.text


def create_documented_pipeline(http: httpx.Client, document: dict[str, Any]) -> dict[str, str]:
    """POST every documented request example, in dependency order; the steps they reference that no example
    creates (the base datasets: ``titanic_test``, ``mnist``...) are created first as stand-ins. Returns the
    path each example's step was created at, by step name.

    The rule: every example is answered 201. The one exception is a dataset example whose URL host the
    machine cannot resolve (no DNS: the server cannot check it is public), answered 422 "cannot resolve host";
    a stand-in then takes its name, so the examples that reference it are still checked.
    """
    examples = request_examples(document)
    names = [body["name"] for body in examples.values()]
    assert len(names) == len(set(names)), f"two examples create the same step: {sorted(names)}"
    for name in sorted(set().union(*map(referenced, examples.values())) - set(names)):
        stand_in(http, name)
    created = {}
    for path in in_dependency_order(examples):
        body = examples[path]
        response = http.post(path.removeprefix(PREFIX), json=body)
        if response.status_code == 422 and path.startswith(f"{PREFIX}/dataset/") and "resolve" in response.text:
            stand_in(http, body["name"])
            continue
        assert response.status_code == 201, f"POST {path} {json.dumps(body)}: {response.status_code} {response.text}"
        created[body["name"]] = path
    return created


@pytest.fixture(scope="module")
def documented_steps(auth_api: ServerHandle) -> dict[str, str]:
    """The documented examples, created on the server with tokens: the route of each step, by name."""
    with auth_api.client() as http:
        return create_documented_pipeline(http, openapi(auth_api))


def test_documented_examples_are_accepted(auth_api: ServerHandle, documented_steps: dict[str, str]) -> None:
    document = openapi(auth_api)
    creatable = {f"{PREFIX}/{service}/{name}" for name, spec in catalog.TOOLS.items() if spec.implementation
                 for service in spec.services}  # fmt: skip
    assert set(request_examples(document)) == creatable
    with auth_api.client() as http:
        for name, path in documented_steps.items():
            document_of = http.get(f"{path.removeprefix(PREFIX)}/{name}").json()["result"][0]
            assert document_of["name"] == name


def test_existing_steps_are_answered_as_documented(
    auth_api: ServerHandle, documented_steps: dict[str, str], session: requests.Session
) -> None:
    """Fuzzing names steps at random, so it mostly meets 404s: here every read (and cancel) of a step by name
    is asked about an existing step of its kind, and its answer checked against the document."""
    schema = schemathesis_schema(auth_api, 1, coverage=False)
    with auth_api.client() as http:
        listed = http.get("/steps", params={"limit": 1000}).json()["result"]
    by_kind = {}
    for step in sorted(listed, key=lambda step: step["name"]):
        by_kind.setdefault(f"/{step['service']}/{step['tool']}/", step["name"])
    any_step = sorted(documented_steps)[0]
    checked = 0
    for method, path, operation in operations(schema.raw_schema):
        if "{name}" not in path or path.startswith((f"{PREFIX}/models", "/v2/")) or method not in ("GET", "POST"):
            continue
        below = path.removeprefix(PREFIX)
        name = next((step for prefix, step in by_kind.items() if below.startswith(prefix)), any_step)
        parameters = {"name": name, **{p["name"]: "summary.json" for p in operation.get("parameters", [])
                                       if p["in"] == "path" and p["name"] == "file"}}  # fmt: skip
        query = {"timeout": 0} if path.endswith("/observe/{name}") else None
        case = schema[path][method].Case(path_parameters=parameters, headers=ADMIN, query=query)
        case.call_and_validate(checks=CHECKS, session=session, timeout=60)
        checked += 1
    assert checked > 400


# ----- Schemathesis ---------------------------------------------------------------------------------


def shape(method: str, path: str, operation: dict[str, Any]) -> tuple[str, str, str]:
    """Operations that differ only by ``/{service}/{tool}`` and share their body schema have one shape: the
    same handler and the same validation, so the coverage phase tests one of them (fuzzing tests them all)."""
    parts = path.split("/")
    if len(parts) > 4 and _is_step_route("/".join(parts[:5])):
        parts[3:5] = ["{service}", "{tool}"]
    content = operation.get("requestBody", {}).get("content", {})
    body = json.dumps({media: value.get("schema") for media, value in content.items()}, sort_keys=True)
    return method, "/".join(parts), body


def one_of_each_shape(document: dict[str, Any]) -> list[str]:
    """The label of one operation of each shape, picked with the seed (so which tool stands for a shape
    varies with it, not always the first one)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for method, path, operation in operations(document):
        groups.setdefault(shape(method, path, operation), []).append(f"{method} {path}")

    def draw(label: str) -> str:
        return hashlib.sha256(f"{SEED}:{label}".encode()).hexdigest()

    return sorted(min(labels, key=draw) for labels in groups.values())


def schemathesis_schema(server: ServerHandle, fuzz_examples: int, coverage: bool) -> Any:
    """The server's document loaded for Schemathesis: the examples and fuzzing phases on every operation (at
    most ``fuzz_examples`` examples each), the coverage phase (when ``coverage``) on one of each shape."""
    document = openapi(server)
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": server.url,
            "generation": {"max-examples": fuzz_examples, "database": "none", "deterministic": True},
            "phases": {
                "examples": {"enabled": True},
                "fuzzing": {"enabled": True},
                "coverage": {"enabled": False},
                "stateful": {"enabled": False},
            },
            "operations": [
                {"include-name": one_of_each_shape(document), "phases": {"coverage": {"enabled": coverage}}}
            ],
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


class RotatingTokens:
    """Schemathesis auth provider: the admin, editor and viewer tokens in turn, request after request."""

    roles = itertools.cycle(sorted(TOKENS))

    def get(self, case: Any, context: Any) -> str:
        return next(self.roles)

    def set(self, case: Any, token: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def auth_schema(auth_api: ServerHandle) -> Any:
    schema = schemathesis_schema(auth_api, FUZZ_EXAMPLES, coverage=True)
    schema.auth(refresh_interval=None, retry_on=[])(RotatingTokens)
    return schema


@pytest.fixture(scope="module")
def open_schema(open_api: ServerHandle) -> Any:
    # The same routes without tokens: every role check passes as an admin's would; one example each suffices.
    return schemathesis_schema(open_api, 1, coverage=False)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One HTTP session for every call (a new one per call costs a TLS context: ~0.1 s each)."""
    with requests.Session() as shared:
        yield shared


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy loader names its subtests through ``node._nodeid``, which pytest 9.2 no
    longer has (``nodeid`` is computed): give it one to read."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schemathesis.pytest.from_fixture("auth_schema").parametrize()
def test_every_operation_with_tokens(case: Any, session: requests.Session) -> None:
    case.call_and_validate(checks=CHECKS, session=session, timeout=60)


@schemathesis.pytest.from_fixture("open_schema").parametrize()
def test_every_operation_on_loopback_without_tokens(case: Any, session: requests.Session) -> None:
    case.call_and_validate(checks=CHECKS, session=session, timeout=60)
