"""Response examples for the OpenAPI document: one per route, plus the shared error shape."""

from __future__ import annotations

from typing import Any

METADATA: dict[str, Any] = {
    "name": "titanic_train",
    "service": "dataset",
    "tool": "csv",
    "status": "finished",
    "finished": True,
    "settled": True,
    "parameters": {"source": {"kind": "url", "url": "https://example.org/train.csv"}, "separator": ","},
    "description": "",
    "createdAt": "2026-11-22T10:00:00+00:00",
    "updatedAt": "2026-11-22T10:00:01+00:00",
    "run": 1,
    "runs": 1,
    "error": None,
    "parents": [],
    "owner": None,
    "output": {"kind": "table", "files": ["data.parquet", "summary.json"]},
    "url": "/api/v1/dataset/csv/titanic_train",
    "metrics": {},
    "fields": ["PassengerId", "Survived", "Pclass"],
    "types": {"PassengerId": "integer", "Survived": "integer", "Pclass": "integer"},
    "rowCount": 891,
}

RUN: dict[str, Any] = {
    "run": 1,
    "id": "3f2a9c0e8b1d4e6f9a7b5c3d1e0f2a4b",
    "status": "finished",
    "attempt": 1,
    "parameters": METADATA["parameters"],
    "createdAt": "2026-11-22T10:00:00+00:00",
    "startedAt": "2026-11-22T10:00:00.020000+00:00",
    "finishedAt": "2026-11-22T10:00:00.410000+00:00",
    "wallS": 0.37,
    "reason": None,
    "exception": None,
    "traceback": None,
    "metrics": {},
    "peakMemoryMb": 182.4,
    "cpuTimeS": 0.35,
    "node": "worker-host-1",
    "cachedFrom": None,
    "fingerprint": None,
}

ERROR: dict[str, Any] = {
    "result": "no step named 'titanic'",
    "error": {"status": 404, "code": "not_found", "message": "no step named 'titanic'"},
}


def ok(example: Any, description: str = "Successful response") -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its success example and the error shape every route shares."""
    return {
        200: {"description": description, "content": {"application/json": {"example": example}}},
        "4XX": {"description": "JSON error with a clear message", "content": {"application/json": {"example": ERROR}}},
    }


CREATED = {"result": "/api/v1/dataset/csv/titanic_train"}
LIST = {"result": [METADATA]}
PAGE = {"result": [METADATA, {"PassengerId": 1, "Survived": 0, "Pclass": 3}]}
UPDATED = {"result": "/api/v1/dataset/csv/titanic_train"}
DELETED = {"result": "deleted titanic_train"}
RUNS = {"result": [RUN]}
LOGS = {"result": {"run": 1, "status": "finished", "stdout": "downloaded 61194 bytes\n", "stderr": ""}}
ARTIFACTS = {"result": [{"name": "data.parquet", "size": 24576}, {"name": "summary.json", "size": 512}]}
CANCELLED = {"result": {**METADATA, "status": "cancelled", "finished": False}}
OBSERVED = {"result": METADATA, "timedOut": False}
LINEAGE = {
    "result": {
        "nodes": [METADATA, {**METADATA, "name": "titanic_X", "service": "transform", "tool": "projection"}],
        "edges": [{"parent": "titanic_train", "child": "titanic_X", "reference": "parentName"}],
    }
}
HEALTH = {"result": {"status": "ok", "version": "0.1.0", "instance": "host-1a2b3c4d"}}
