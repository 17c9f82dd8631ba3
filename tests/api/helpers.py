"""Helpers for API tests: create steps over HTTP and wait for them with the REST long poll."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import load_digits

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


def wait_for_status(http: httpx.Client, name: str, status: str = "running", timeout: float = 120.0) -> dict:
    """Poll a step (it may not exist yet) until it has ``status``; its document."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/steps/{name}")
        if response.status_code == 200 and response.json()["result"]["status"] == status:
            document: dict = response.json()["result"]
            return document
        assert time.monotonic() < deadline, f"step {name} was never {status}"
        time.sleep(0.2)


def digits_npz(path: Path) -> Path:
    digits = load_digits()
    np.savez(path, x=(digits.images / 16.0).astype(np.float32), y=digits.target)
    return path


def upload_digits(server: ServerHandle, http: httpx.Client, folder: Path) -> None:
    path = digits_npz(folder / "digits.npz")
    with path.open("rb") as handle:
        response = http.post("/dataset/generic", data={"name": "digits"}, files={"file": (path.name, handle)})
    assert response.status_code == 201, response.text
    assert server.wait("digits")["status"] == "finished"


def assert_classified(result: dict[str, Any], rows: int, classes: list[Any], agree: float = 1.0) -> None:
    """One label per row among ``classes``, probabilities over exactly those classes summing to 1, and the
    most probable class being the label (for at least ``agree`` of the rows)."""
    assert result["task"] == "classification" and result["rows"] == rows
    predictions = result["predictions"]
    assert len(predictions) == rows and set(predictions) <= set(classes), predictions[:10]
    assert sorted(map(str, result["classes"])) == sorted(map(str, classes))
    probabilities = np.asarray(result["probabilities"])
    assert probabilities.shape == (rows, len(classes))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5) and (probabilities >= 0).all()
    argmax = [result["classes"][i] for i in probabilities.argmax(axis=1)]
    assert np.mean([a == p for a, p in zip(argmax, predictions, strict=True)]) >= agree
