"""Helpers for API tests: create steps over HTTP and wait for them with the REST long poll."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerHandle


def post(http: httpx.Client, route: str, body: dict[str, Any], expect: int = 201) -> httpx.Response:
    response = http.post(route, json=body)
    assert response.status_code == expect, response.text
    return response


def upload(http: httpx.Client, name: str, path: Path, tool: str = "csv", **form: str) -> None:
    with path.open("rb") as handle:
        response = http.post(f"/dataset/{tool}", data={"name": name, **form}, files={"file": (path.name, handle)})
    assert response.status_code == 201, response.text


def run(server: ServerHandle, http: httpx.Client, route: str, body: dict[str, Any], status: str = "finished") -> dict:
    post(http, route, body)
    document = server.wait(body["name"])
    assert document["status"] == status, document
    return document


def content(http: httpx.Client, url: str, **params: Any) -> list[Any]:
    response = http.get(url, params=params)
    assert response.status_code == 200, response.text
    result: list[Any] = response.json()["result"]
    return result
