"""The search budget is decided against the step's timeout once, at POST: a default timeout is raised to
fit it (within the server's maximum), an explicit one that is too small is a 422; workers never cut it."""

from __future__ import annotations

import httpx
import pytest

from automl_orchestra.contracts.budget import budget_reserve_s, timeout_for_budget
from automl_orchestra.engines.core.automl import bounded_budget
from tests.api.helpers import post
from tests.conftest import ServerHandle


@pytest.mark.parametrize("budget", [1, 5, 60, 89.5, 90, 91, 100, 3240, 3241, 7200, 86_000])
def test_the_sized_timeout_holds_the_budget_and_its_reserve(budget: float) -> None:
    timeout = timeout_for_budget(budget)
    assert timeout == int(timeout) and bounded_budget(budget, timeout) == budget  # the worker side agrees
    assert timeout - 1 < budget + budget_reserve_s(timeout - 1)  # and it is the smallest whole second that does


def _failing_parent(server: ServerHandle, http: httpx.Client, name: str) -> None:
    # The automl steps below need an existing parent at POST but must not search for hours: theirs fails.
    post(http, "/function/python", {"name": name, "code": "raise ValueError('no data here')"})
    assert server.wait(name)["status"] == "failed"


def test_a_budget_beyond_the_default_timeout_raises_it(server: ServerHandle, http: httpx.Client) -> None:
    _failing_parent(server, http, "bg_parent")
    body = {"name": "bg_long", "parentName": "bg_parent", "target": "y", "timeBudget": 7200}
    post(http, "/automl/flaml", body)
    document = http.get("/steps/bg_long").json()["result"]
    assert document["timeout"] == {
        "seconds": 8000.0,
        "source": "raised",
        "reason": "the default timeout cannot hold timeBudget 7200 s",
    }
    assert document["parameters"]["timeBudget"] == 7200  # not cut
    assert server.wait("bg_long")["status"] == "failed"  # its input failed; the budget was never at issue

    post(http, "/automl/flaml", {**body, "name": "bg_short", "timeBudget": 60})
    assert http.get("/steps/bg_short").json()["result"]["timeout"] == {"seconds": 3600.0, "source": "default"}
    assert server.wait("bg_short")["status"] == "failed"
    # A re-execution keeps the step's limits: a budget its timeout cannot hold is refused, not cut.
    response = http.patch("/steps/bg_short", json={"timeBudget": 7200})
    assert response.status_code == 422 and "keeps the step's limits" in response.json()["result"]

    response = http.post("/automl/flaml", json={**body, "name": "bg_huge", "timeBudget": 7 * 24 * 3600})
    assert response.status_code == 422, response.text
    assert "more than this server's maximum of 86400 s; lower timeBudget" in response.json()["result"]
    assert http.get("/steps/bg_huge").status_code == 404


def test_an_explicit_timeout_too_small_for_the_budget_is_a_clear_422(http: httpx.Client) -> None:
    body = {"name": "bg_tight", "parentName": "anything", "target": "y", "timeBudget": 100, "limits": {"timeoutS": 50}}
    for route in ("/automl/flaml", "/automl/compare"):
        response = http.post(route, json=body)
        assert response.status_code == 422, response.text
        message = response.json()["result"]
        assert "timeBudget 100 s does not fit limits.timeoutS 50 s" in message
        assert "raise limits.timeoutS to 112" in message and "leave limits.timeoutS out" in message
    assert http.get("/steps/bg_tight").status_code == 404
