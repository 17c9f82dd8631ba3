"""Typed access to a step's raw parameters, with messages that name the parameter.

The API validates the request shape, but a worker must not trust that: a job file can come from an older
server or be re-run after a change, and a ``KeyError`` deep inside an engine tells the user nothing.
"""

from __future__ import annotations

from typing import Any

from automl_orchestra.contracts.errors import StepError


def require_str(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise StepError(f"parameter {key!r} is required and must be a non-empty string")
    return value


def optional_str(params: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise StepError(f"parameter {key!r} must be a string, not {type(value).__name__}")
    return value


def optional_str_list(params: dict[str, Any], key: str) -> list[str] | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise StepError(f"parameter {key!r} must be a list of strings")
    if len(set(value)) != len(value):
        duplicates = sorted({item for item in value if value.count(item) > 1})
        raise StepError(f"parameter {key!r} lists {duplicates} more than once")
    return list(value)


def optional_dict(params: dict[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise StepError(f"parameter {key!r} must be an object with string keys")
    return dict(value)


def optional_bool(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise StepError(f"parameter {key!r} must be true or false")
    return value


def optional_number(params: dict[str, Any], key: str, default: float, *, minimum: float | None = None) -> float:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepError(f"parameter {key!r} must be a number")
    if minimum is not None and value < minimum:
        raise StepError(f"parameter {key!r} must be at least {minimum}")
    return float(value)


def optional_int(
    params: dict[str, Any], key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise StepError(f"parameter {key!r} must be an integer")
    if minimum is not None and value < minimum:
        raise StepError(f"parameter {key!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise StepError(f"parameter {key!r} must be at most {maximum}")
    return value
