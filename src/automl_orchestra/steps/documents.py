"""The JSON documents the API returns for steps and runs (Learning Orchestra metadata semantics)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from automl_orchestra.contracts.outputs import json_safe
from automl_orchestra.store.models import SETTLED, Run, Step

API_PREFIX = "/api/v1"


def step_url(step: Step) -> str:
    return f"{API_PREFIX}/{step.service}/{step.tool}/{step.name}"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; every time stored is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def step_document(step: Step, parents: list[str] | None = None) -> dict[str, Any]:
    output = step.output or None
    doc: dict[str, Any] = {
        "name": step.name,
        "service": step.service,
        "tool": step.tool,
        "status": step.status,
        "finished": step.status == "finished",
        "settled": step.status in SETTLED,
        # Cut at MAX_OUTPUT_DEPTH: a row stored before the request limits must not break every listing.
        "parameters": json_safe(step.parameters),
        "description": step.description,
        "createdAt": _iso(step.created_at),
        "updatedAt": _iso(step.updated_at),
        "run": step.current_run,
        "runs": step.run_count,
        "error": step.error,
        "parents": parents if parents is not None else [],
        "owner": step.owner,
        "output": {"kind": output["kind"], "files": output.get("files", [])} if output else None,
        "url": step_url(step),
    }
    meta = json_safe(dict(step.meta or {}))
    doc["metrics"] = meta.pop("metrics", {})
    # What the engine reported joins the document, but never replaces the step's own fields.
    doc.update({key: value for key, value in meta.items() if key not in doc})
    return doc


def run_document(run: Run) -> dict[str, Any]:
    return {
        "run": run.number,
        "id": run.id,
        "status": run.status,
        "attempt": run.attempt,
        "parameters": json_safe(run.parameters),
        "createdAt": _iso(run.created_at),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "wallS": run.wall_s,
        "reason": run.reason,
        "exception": run.exception,
        "traceback": run.traceback,
        "metrics": run.metrics,
        "peakMemoryMb": run.peak_memory_mb,
        "cpuTimeS": run.cpu_time_s,
        "node": run.node,
        "cachedFrom": run.cached_from,
        "fingerprint": run.fingerprint,
    }
