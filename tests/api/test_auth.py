"""Bearer tokens with roles; code steps only for roles that may run code; auth required off loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import ServerHandle


def test_auth_off_by_default_on_loopback(server: ServerHandle) -> None:
    assert httpx.get(f"{server.api}/steps").status_code == 200


def test_tokens_and_roles(auth_server: ServerHandle) -> None:
    api = auth_server.api
    assert httpx.get(f"{api}/steps").status_code == 401
    assert httpx.get(f"{api}/steps", headers={"Authorization": "Bearer nope"}).status_code == 401
    viewer = {"Authorization": "Bearer viewer-token"}
    editor = {"Authorization": "Bearer editor-token"}
    admin = {"Authorization": "Bearer admin-token"}
    model = {"name": "auth_model", "modulePath": "sklearn.linear_model", "class": "LinearRegression"}
    assert httpx.get(f"{api}/steps", headers=viewer).status_code == 200
    response = httpx.post(f"{api}/model/scikitlearn", json=model, headers=viewer)
    assert response.status_code == 403 and "viewer" in response.json()["result"]
    assert httpx.post(f"{api}/model/scikitlearn", json=model, headers=editor).status_code == 201
    code = {"name": "auth_code", "code": "response = 1"}
    response = httpx.post(f"{api}/function/python", json=code, headers=editor)
    assert response.status_code == 403 and "may not run code" in response.json()["result"]
    assert httpx.post(f"{api}/function/python", json=code, headers=admin).status_code == 201
    assert auth_server.wait("auth_code")["status"] == "finished"
    assert httpx.patch(f"{api}/steps/auth_code", json={"code": "response = 2"}, headers=editor).status_code == 403
    assert httpx.delete(f"{api}/steps/auth_model", headers=viewer).status_code == 403
    assert httpx.get(f"{api}/observe/auth_code", headers=viewer).status_code == 200
    assert httpx.get(f"{api}/observe/auth_code").status_code == 401


def test_refuses_non_loopback_bind_without_tokens() -> None:
    env = {**os.environ, "ORCHESTRA_HOST": "0.0.0.0", "ORCHESTRA_TOKENS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "automl_orchestra.api.server"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "without authentication" in result.stderr


def test_callers_without_the_right_token_learn_nothing_about_which_steps_exist(auth_server: ServerHandle) -> None:
    """Roles are settled before any lookup: an existing and a missing step get the same 401 / 403."""
    api = auth_server.api
    admin = {"Authorization": "Bearer admin-token"}
    viewer = {"Authorization": "Bearer viewer-token"}
    assert httpx.post(f"{api}/function/python", json={"name": "auth_probe", "code": "response = 1"}, headers=admin)
    assert httpx.get(f"{api}/steps/auth_probe", headers=admin).status_code == 200
    routes = ["/steps/{}", "/function/python/{}"]
    calls = [("GET", "{}"), ("PATCH", "{}"), ("DELETE", "{}"), ("POST", "{}/cancel")]

    def both(method: str, path: str, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
        body = {"code": "response = 2"} if method == "PATCH" else None
        existing, missing = (
            httpx.request(method, api + path.format(name), json=body, headers=headers)
            for name in ("auth_probe", "auth_nobody")
        )
        return existing, missing

    for route in routes:
        for method, tail in calls:
            path = tail.format(route)
            existing, missing = both(method, path, {})
            assert existing.status_code == missing.status_code == 401, (method, path, existing.text)
            assert existing.json() == missing.json()
            if method != "GET":
                existing, missing = both(method, path, viewer)
                assert existing.status_code == missing.status_code == 403, (method, path, existing.text)
                assert existing.json() == missing.json()
    assert httpx.get(f"{api}/steps/auth_probe", headers=admin).status_code == 200  # nothing was deleted
