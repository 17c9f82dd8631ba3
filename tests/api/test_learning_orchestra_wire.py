"""Learning Orchestra's own wire calls (``api/routes_learning_orchestra.py``, ``api/content.py``): roles first,
refusals with the way out. The happy paths run through the real PyPI client in
``tests/client/test_learning_orchestra_pypi.py``."""

from __future__ import annotations

import httpx
import pytest

from automl_orchestra.api.content import parse_query
from automl_orchestra.api.errors import ApiError
from tests.conftest import ServerHandle

LO_API = "/api/learningOrchestra/v1"


def test_a_query_may_be_the_repr_of_a_dict_as_the_client_writes_it() -> None:
    assert parse_query("{'Sex': 'female', 'Pclass': 3, 'Cabin': None, 'Alone': True}") == {
        "Sex": "female",
        "Pclass": 3,
        "Cabin": None,
        "Alone": True,
    }
    assert parse_query("{}") == {}
    for refused in ("{'a': [1]}", "{'a': (1,)}", "{'a': 1e999}", "{1: 'a'}", "__import__('os')", "{'a': b'x'}"):
        with pytest.raises(ApiError) as caught:
            parse_query(refused)
        assert caught.value.status == 422, refused


def test_roles_come_before_any_lookup(auth_server: ServerHandle) -> None:
    base = f"{auth_server.url}{LO_API}"
    change = {"inputDatasetName": "no_such_step", "types": {"Age": "number"}}
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        assert anonymous.patch("/transform/dataType", json=change).status_code == 401
        assert anonymous.get("/explore/getlocaldatapycaret", params={"fileName": "score"}).status_code == 401
        assert anonymous.get("/explore/scikitlearn/no_such_step/metadata").status_code == 401
        assert anonymous.get("/transform/dataType/no_such_step").status_code == 401
    viewer = {"Authorization": "Bearer viewer-token"}
    with httpx.Client(base_url=base, headers=viewer, timeout=30) as http:
        # a viewer may not change types: the same answer whether the step exists or not
        assert http.patch("/transform/dataType", json=change).status_code == 403
        assert http.delete("/transform/dataType/no_such_step").status_code == 403
        missing = http.get("/explore/getlocaldatapycaret", params={"fileName": "score"})
        assert missing.status_code == 404 and "no finished builder step wrote" in missing.json()["result"]
        assert http.get("/explore/scikitlearn/no_such_step/metadata").status_code == 404


def test_types_change_in_place_only_on_tables_that_take_types(server: ServerHandle, http: httpx.Client) -> None:
    code = {"name": "lo_wire_code", "code": "response = 1"}
    assert http.post("/function/python", json=code).status_code == 201
    with httpx.Client(base_url=f"{server.url}{LO_API}", timeout=30) as lo:
        refused = lo.patch("/transform/dataType", json={"datasetName": "lo_wire_code", "types": {"a": "number"}})
        assert refused.status_code == 422
        assert "create a transform/dataType step with parentName 'lo_wire_code'" in refused.json()["result"]
        unknown = lo.patch("/transform/dataType", json={"inputDatasetName": "lo_wire_code", "types": {"a": "float"}})
        assert unknown.status_code == 422 and "unknown type 'float'" in unknown.text
        assert lo.get("/transform/dataType/lo_wire_code").status_code == 404
        headers = {"Content-Type": "application/json"}
        broken = lo.request("GET", "/explore/getlocaldatapycaret", content=b"{not json", headers=headers)
        assert broken.status_code == 400
