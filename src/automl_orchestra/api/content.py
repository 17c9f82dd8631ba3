"""Content pages of a step (element 0 the metadata document, then rows), read without loading it all."""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from automl_orchestra.api.errors import ApiError
from automl_orchestra.api.limits import json_problem
from automl_orchestra.contracts.outputs import ARRAY_FILE, OutputRef, json_safe
from automl_orchestra.steps.documents import step_document
from automl_orchestra.store import outputs
from automl_orchestra.store.artifacts import ArtifactStore
from automl_orchestra.store.models import Step


def parse_query(text: str | None) -> dict[str, Any] | None:
    """``query`` is a JSON object of column equality filters; never a raw database query. A Python dict
    literal of plain values is read too: Learning Orchestra's client puts ``query={query}`` in its URLs,
    the ``repr`` of a dict (``{'Sex': 'female'}``)."""
    if not text:
        return None
    problem = json_problem(text.encode("utf-8", "surrogatepass"))
    if problem:
        raise ApiError(422, f"query: {problem}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        value = _python_literal(text)
        if value is None:
            raise ApiError(422, f"query must be a JSON object of column filters: {exc.msg}") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ApiError(422, 'query must be a JSON object such as {"Sex": "female"}')
    bad = [k for k, v in value.items() if isinstance(v, dict | list)]
    if bad:
        raise ApiError(422, f"query values must be single values, not lists or objects: {bad}")
    return value


def _python_literal(text: str) -> dict[str, Any] | None:
    """A ``repr``-style dict of strings, numbers, booleans and None (``ast.literal_eval`` evaluates no
    code), or None when ``text`` is not one. Its size and nesting were checked by ``json_problem``."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    plain = (str, bool, int, float, type(None))
    if not isinstance(value, dict) or not all(isinstance(item, plain) for item in value.values()):
        return None
    if any(isinstance(item, float) and not math.isfinite(item) for item in value.values()):
        return None  # 1e999 is inf: no column holds it, and JSON (the answer) cannot say it
    return value


def page(
    store: ArtifactStore, step: Step, parents: list[str], skip: int, limit: int, query: dict[str, Any] | None
) -> list[Any]:
    document = step_document(step, parents)
    if not step.output:
        if query:
            raise ApiError(422, f"step {step.name!r} has no stored output to filter yet (status {step.status})")
        return [document]
    ref = OutputRef.model_validate(step.output)
    if query and ref.kind != "table":
        raise ApiError(422, f"query filters apply to tables; {step.name!r} holds a {ref.kind} output")
    return [document, *_rows(store, ref, skip, limit, query)]


def _rows(store: ArtifactStore, ref: OutputRef, skip: int, limit: int, query: dict[str, Any] | None) -> list[Any]:
    if ref.kind == "table":
        if query:
            schema = outputs.table_schema(store, ref)
            unknown = [k for k in query if k not in schema]
            if unknown:
                raise ApiError(422, f"unknown column(s) in query: {unknown}; columns: {list(schema)}")
            mismatches = outputs.query_mismatches(store, ref, query)
            if mismatches:
                raise ApiError(422, "query values do not match the column types: " + "; ".join(mismatches))
        return outputs.read_table_page(store, ref, skip, limit, query)
    if ref.kind == "json":
        value = json_safe(outputs.read_json_output(store, ref))
        return value[skip : skip + limit] if isinstance(value, list) else [value]
    if ref.kind == "array" and store.is_local:
        import numpy as np

        array = np.load(store.path(f"{ref.prefix}/{ARRAY_FILE}"), mmap_mode="r", allow_pickle=False)
        return json_safe(np.asarray(array[skip : skip + limit]).tolist())
    return [outputs.read_summary(store, ref)]
