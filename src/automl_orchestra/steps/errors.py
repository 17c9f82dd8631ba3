"""Errors of the step model; the API maps each to its HTTP status with the message unchanged."""

from __future__ import annotations

from typing import Any


class StepModelError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(StepModelError):
    status = 422
    code = "validation"


class NotFound(StepModelError):
    status = 404
    code = "not_found"


class Conflict(StepModelError):
    status = 409
    code = "conflict"


class Forbidden(StepModelError):
    status = 403
    code = "forbidden"
