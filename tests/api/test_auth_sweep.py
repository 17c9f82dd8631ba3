"""Authentication and roles over the whole OpenAPI document of a real server.

Every operation of ``/openapi.json`` (iterated, not listed by hand) is called with no token, a wrong token and
each role's token, and must answer what the role model of docs/security.md says:

* no token or an unknown one: 401 (with ``WWW-Authenticate: Bearer``), except the open ``GET /health`` and the
  Open Inference Protocol's health and server metadata (``/v2``, ``/v2/health/*``);
* ``viewer``: may read (``GET``) and predict with a registered model (``POST …/predict``, ``…/infer``), 403 on
  anything that changes state;
* ``editor``: may change steps, 403 on code steps (``function/*``, ``builder/*``, ``model/keras``) unless its
  role is in ``ORCHESTRA_CODE_ROLES``;
* ``admin``: everything.

A caller without the right token learns nothing about which steps exist: for an operation with a step name
in its path, the answer without a token, with a wrong one or with a role below the operation's is the same,
status and body, for an existing step of the route's kind, a step of another kind, a missing name and a
malformed one. Requests carry an empty JSON body (or an empty upload) where the operation takes one, so the
role must be settled before the body is validated, too.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from automl_orchestra.contracts import catalog
from tests.api.test_schemathesis import (
    PREFIX,
    TOKEN_LIST,
    api_only_server,
    create_documented_pipeline,
    openapi,
    operations,
    stop_cleanly,
)
from tests.conftest import ServerHandle

ROLES = ("viewer", "editor", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
OPEN = {("GET", f"{PREFIX}/health"), ("GET", "/v2"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready")}
# Where the registered models are served: a prediction reads a model, it changes nothing.
MODEL_PREFIXES = (f"{PREFIX}/models", "/v2/models")
MISSING, MALFORMED = "sweep_nobody", "-not-a-name-"
PIPELINE = "ts-sweep"  # a time-series pipeline is the automl/tpot step ts-{modelId}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with the API prefix, as the document lists it
    operation: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def kind(self) -> tuple[str, str] | None:
        """(service, tool) of a ``/{service}/{tool}/...`` route."""
        service, _, rest = self.path.removeprefix(PREFIX + "/").partition("/")
        tool = rest.split("/", 1)[0]
        spec = catalog.tool(tool)
        return (service, tool) if spec is not None and service in spec.services else None

    @property
    def names_a_step(self) -> bool:
        """Whether ``{name}`` is a step's name (the model registry's ``/models/{name}`` is not)."""
        return "{name}" in self.path and not self.path.startswith(MODEL_PREFIXES)

    @property
    def runs_code(self) -> bool:
        """Creating (``POST /{service}/{tool}``) or re-executing (``PATCH .../{name}``) a code step: a code role
        is needed. Reading, cancelling and deleting one is an editor's."""
        if self.kind is None or not catalog.runs_code(*self.kind):
            return False
        base = f"{PREFIX}/{self.kind[0]}/{self.kind[1]}"
        return (self.method, self.path) in {("POST", base), ("PATCH", base + "/{name}")}

    def minimum(self) -> str | None:
        """The role the role model requires: None for the open routes."""
        if (self.method, self.path) in OPEN:
            return None
        if self.path.startswith((*MODEL_PREFIXES, f"{PREFIX}/timeseries")) and self.path.endswith(
            ("/predict", "/infer")
        ):
            return "viewer"
        return "viewer" if self.method == "GET" else "editor"


def all_operations(document: dict[str, Any]) -> list[Operation]:
    return [Operation(method, path, operation) for method, path, operation in operations(document)]


# ----- the server and its steps ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = api_only_server(tmp_path_factory.mktemp("sweep"), "admin-token", ORCHESTRA_TOKENS=TOKEN_LIST)
    yield handle
    stop_cleanly(handle)


@pytest.fixture(scope="module")
def steps(sweep_api: ServerHandle) -> dict[tuple[str, str], str]:
    """One step of each kind the documented examples make (their derived steps included: leaderboards,
    holdouts, grids...), by (service, tool)."""
    document = openapi(sweep_api)
    with sweep_api.client() as http:
        create_documented_pipeline(http, document)
        for tool in catalog.tools_for("dataset"):  # uploads: the URL examples need DNS, these do not
            upload = {"file": (f"sweep.{'ts' if tool == 'timeseries' else 'csv'}", b"a,b\n1,2\n")}
            created = http.post(f"/dataset/{tool}", data={"name": f"sweep_{tool}"}, files=upload)
            assert created.status_code == 201, created.text
        automl = {"name": PIPELINE, "parentName": "titanic_train", "target": "label", "timeBudget": 10}
        assert http.post("/automl/tpot", json=automl).status_code == 201
        listed = http.get("/steps", params={"limit": 1000}).json()["result"]
    found: dict[tuple[str, str], str] = {}
    for step in sorted(listed, key=lambda s: s["name"]):
        found.setdefault((step["service"], step["tool"]), step["name"])
    return found


# ----- requests -------------------------------------------------------------------------------------


def request(http: httpx.Client, op: Operation, token: str | None, name: str) -> httpx.Response:
    """``op`` with ``name`` for ``{name}`` (other path parameters get a fixed value), an empty JSON body or
    an empty upload where the operation takes a body, and ``token``."""
    path = url_of(http, op).replace("{name}", name)
    for parameter in op.operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] != "name":
            value = "1" if parameter["schema"].get("type") == "integer" else _plain(parameter["name"])
            path = path.replace("{" + parameter["name"] + "}", value)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content = op.operation.get("requestBody", {}).get("content", {})
    params = {"timeout": 0} if op.path.endswith("/observe/{name}") else None  # do not wait for the step
    if "application/json" in content:
        return http.request(op.method, path, json={}, headers=headers, params=params)
    if content:
        files = {"raw_data": ("empty.csv", b"")}
        return http.request(op.method, path, files=files, headers=headers, params=params)
    return http.request(op.method, path, headers=headers, params=params)


def url_of(http: httpx.Client, op: Operation) -> str:
    """``op``'s path for ``http`` (whose base is the API prefix); a route outside the prefix (the inference
    protocol's ``/v2``) is asked of the server's root."""
    return op.path.removeprefix(PREFIX) if op.path.startswith(PREFIX) else str(http.base_url.join(op.path))


def _plain(parameter: str) -> str:
    return {"file": "summary.json", "model_id": PIPELINE.removeprefix("ts-")}.get(parameter, "sweep")


def token_of(role: str) -> str:
    return f"{role}-token"


def names_for(op: Operation, steps: dict[tuple[str, str], str]) -> dict[str, str]:
    """The step names ``op`` is called with: an existing step of its kind (where one exists), one of another
    kind, a missing name and a malformed one."""
    if not op.names_a_step:
        return {"missing": MISSING}
    kind = op.kind
    same = steps.get(kind) if kind else steps[("model", "scikitlearn")]
    other = next(name for key, name in sorted(steps.items()) if key != kind)
    names = {"other kind": other, "missing": MISSING, "malformed": MALFORMED}
    if same is not None:
        names["same kind"] = same
    return names


def unauthorized_callers(op: Operation, code_roles: set[str]) -> dict[str, str | None]:
    """The callers ``op`` must refuse: no token, a wrong token, and every role below what it needs."""
    callers: dict[str, str | None] = {"no token": None, "wrong token": "not-a-token"}
    minimum = op.minimum()
    for role in ROLES:
        if minimum is not None and (RANK[role] < RANK[minimum] or (op.runs_code and role not in code_roles)):
            callers[role] = token_of(role)
    return callers


# ----- the sweep ------------------------------------------------------------------------------------


def sweep(server: ServerHandle, steps: dict[tuple[str, str], str], code_roles: set[str]) -> list[str]:
    """Every operation with every caller; the list of what differs from the role model. The calls change
    nothing (refused, or asked of a missing step, or with an empty body), so operations run side by side."""
    ops = all_operations(openapi(server))
    # One client (thread-safe; a new one costs a TLS context, ~0.1 s) for four threads.
    with httpx.Client(base_url=server.api, timeout=60) as http, concurrent.futures.ThreadPoolExecutor(4) as pool:
        found = pool.map(lambda op: check_operation(http, op, steps, code_roles), ops)
        return [problem for problems in found for problem in problems]


def check_operation(
    http: httpx.Client, op: Operation, steps: dict[tuple[str, str], str], code_roles: set[str]
) -> list[str]:
    problems: list[str] = []
    names = names_for(op, steps)
    refused = unauthorized_callers(op, code_roles)
    minimum = op.minimum()
    if minimum is None:
        answer = request(http, op, None, MISSING)
        if answer.status_code != 200:
            problems.append(f"{op.label} (open) without a token: {answer.status_code} {answer.text[:200]}")
        return problems
    for caller, token in refused.items():
        expected = 401 if caller in ("no token", "wrong token") else 403
        answers = {label: request(http, op, token, name) for label, name in names.items()}
        for label, answer in answers.items():
            if answer.status_code != expected:
                problems.append(
                    f"{op.label} {caller}, {label} step: {answer.status_code} (not {expected}) {answer.text[:200]}"
                )
            elif expected == 401 and answer.headers.get("www-authenticate") != "Bearer":
                problems.append(f"{op.label} {caller}: 401 without 'WWW-Authenticate: Bearer'")
            elif any(name in answer.text for name in names.values() if name != MISSING):
                problems.append(f"{op.label} {caller}: the answer names the step: {answer.text[:200]}")
        if len({(answer.status_code, answer.text) for answer in answers.values()}) > 1:
            shown = {label: (a.status_code, a.text[:120]) for label, a in answers.items()}
            problems.append(f"{op.label} {caller}: the answer depends on the step: {shown}")
    for role in ROLES:
        if role in refused:
            continue
        # Allowed: any answer but 401/403 (or a 5xx). Reads see an existing step; changes are asked of a
        # missing one or with an empty body, so they change nothing.
        reads = op.method == "GET" and not op.path.endswith("/events")
        name = names.get("same kind", names.get("other kind", MISSING)) if reads else MISSING
        answer = request(http, op, token_of(role), name)
        if answer.status_code in (401, 403) or answer.status_code >= 500:
            problems.append(f"{op.label} {role} (allowed): {answer.status_code} {answer.text[:200]}")
    return problems


def test_every_operation_answers_as_the_role_model_says(
    sweep_api: ServerHandle, steps: dict[tuple[str, str], str]
) -> None:
    problems = sweep(sweep_api, steps, code_roles={"admin"})
    assert not problems, f"{len(problems)} answers differ from the role model:\n" + "\n".join(problems[:60])


def test_the_sweep_covers_every_operation_and_kind(sweep_api: ServerHandle, steps: dict[tuple[str, str], str]) -> None:
    """The sweep is only as good as its inputs: every operation is in it, and most step kinds have a step."""
    ops = all_operations(openapi(sweep_api))
    assert len(ops) > 500 and {op.method for op in ops} >= {"GET", "POST", "PATCH", "DELETE"}
    kinds = {op.kind for op in ops if op.names_a_step and op.kind is not None}
    missing = sorted(kind for kind in kinds if kind not in steps)
    assert not missing, missing


def test_an_editor_may_not_re_execute_a_code_step_by_name(
    sweep_api: ServerHandle, steps: dict[tuple[str, str], str]
) -> None:
    """``PATCH /steps/{name}`` is an editor's route, but only the stored step says whether it runs code: the
    check comes after the lookup (which reveals nothing: an editor may read every step)."""
    code_step = steps[("function", "python")]
    with httpx.Client(base_url=sweep_api.api, timeout=60) as http:
        editor = {"Authorization": "Bearer editor-token"}
        answer = http.patch(f"/steps/{code_step}", json={}, headers=editor)
        assert answer.status_code == 403 and "may not run code" in answer.text, answer.text
        assert http.get(f"/steps/{code_step}", headers=editor).status_code == 200


# ----- a server where editors may run code ----------------------------------------------------------


@pytest.fixture(scope="module")
def code_editor_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = api_only_server(
        tmp_path_factory.mktemp("sweep-code"),
        "admin-token",
        ORCHESTRA_TOKENS=TOKEN_LIST,
        ORCHESTRA_CODE_ROLES="editor,admin",
    )
    yield handle
    stop_cleanly(handle)


def test_a_code_role_may_create_code_steps(code_editor_api: ServerHandle) -> None:
    """With ``ORCHESTRA_CODE_ROLES=editor,admin`` the editor is a code role: the code routes let it through
    (and still refuse the viewer), the other routes answer as before."""
    code_ops = [op for op in all_operations(openapi(code_editor_api)) if op.runs_code]
    assert {op.path for op in code_ops} >= {f"{PREFIX}/function/python", f"{PREFIX}/model/keras"}
    with httpx.Client(base_url=code_editor_api.api, timeout=60) as http:
        for op in code_ops:
            editor = request(http, op, token_of("editor"), MISSING)
            viewer = request(http, op, token_of("viewer"), MISSING)
            assert editor.status_code not in (401, 403) and editor.status_code < 500, (op.label, editor.text)
            assert viewer.status_code == 403, (op.label, viewer.text)
        code = {"name": "sweep_code", "code": "response = 1"}
        created = http.post("/function/python", json=code, headers={"Authorization": "Bearer editor-token"})
        assert created.status_code == 201, created.text


def test_unauthorized_answers_do_not_depend_on_the_name(sweep_api: ServerHandle) -> None:
    """The names of 401/403 bodies are fixed texts: no step name, role-independent for 401."""
    with httpx.Client(base_url=sweep_api.api, timeout=60) as http:
        first = http.get("/steps/titanic_train").json()
        second = http.get("/steps/sweep_nobody").json()
        assert first == second and first["error"]["status"] == 401
        assert not re.search(r"titanic|sweep_nobody", str(first))


def test_an_unparseable_body_is_refused_for_the_missing_token_first(sweep_api: ServerHandle) -> None:
    ops = [
        op
        for op in all_operations(openapi(sweep_api))
        if "application/json" in op.operation.get("requestBody", {}).get("content", {})
    ]
    answers = {}
    with httpx.Client(base_url=sweep_api.api, timeout=60) as http:
        for op in ops:
            path = url_of(http, op).replace("{name}", MISSING)
            for parameter in op.operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", "1")
            headers = {"content-type": "application/json"}
            answers[op.label] = http.request(op.method, path, content=b"{", headers=headers).status_code
    assert set(answers.values()) == {401}, {label: status for label, status in answers.items() if status != 401}
