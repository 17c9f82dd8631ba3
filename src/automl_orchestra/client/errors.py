"""Typed exceptions of the Python client.

Every error the server reports (``{"result": msg, "error": {"status", "code", "message", "details"}}``)
becomes an :class:`OrchestraError` subclass chosen by its HTTP status, with the server's message unchanged,
so callers can ``except NotFoundError`` instead of inspecting status codes.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ConnectionError",
    "NotFoundError",
    "OrchestraConnectionError",
    "OrchestraError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StepFailedError",
    "ValidationError",
    "WaitTimeoutError",
    "error_from_response",
]


class OrchestraError(Exception):
    """Base class of every client error.

    ``status`` is the HTTP status (``None`` when no response was received), ``code`` the server's machine
    readable error code (``"not_found"``, ``"validation"``, ...), ``details`` its optional extra information
    (for example the list of invalid fields).
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"


class ValidationError(OrchestraError):
    """The request was refused as invalid (HTTP 400 or 422)."""


class AuthenticationError(OrchestraError):
    """No token, or a token the server does not know (HTTP 401)."""


class PermissionDeniedError(OrchestraError):
    """The token's role may not do this (HTTP 403)."""


class NotFoundError(OrchestraError):
    """No such step, tool, run or artifact (HTTP 404)."""


class ConflictError(OrchestraError):
    """The name is taken, or other steps still depend on the step (HTTP 409)."""


class PayloadTooLargeError(OrchestraError):
    """The upload or body exceeds the server's limit (HTTP 413)."""


class RateLimitError(OrchestraError):
    """Too many requests are waiting (HTTP 429): try again after a moment (the answer's ``Retry-After``)."""


class ServerError(OrchestraError):
    """The server failed, or cannot answer now (HTTP 5xx; 503 when a serving worker is unavailable)."""


class ConnectionError(OrchestraError, builtins.ConnectionError):
    """The server could not be reached or the connection broke (wraps the transport error)."""


OrchestraConnectionError = ConnectionError


class StepFailedError(OrchestraError):
    """Raised by ``wait`` when the step settled as ``failed`` or ``cancelled``.

    ``metadata`` is the step's metadata document; ``reason``, ``exception`` and ``traceback`` come from its
    ``error`` entry (the server's explanation of the failure).
    """

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self.metadata: dict[str, Any] = dict(metadata)
        self.name: str = str(self.metadata.get("name", "?"))
        self.step_status: str = str(self.metadata.get("status", "failed"))
        error = self.metadata.get("error") or {}
        if not isinstance(error, Mapping):
            error = {"reason": str(error)}
        self.reason: str | None = error.get("reason")
        self.exception: str | None = error.get("exception")
        self.traceback: str | None = error.get("traceback")
        explanation = "; ".join(
            dict.fromkeys(part for part in (self.reason, self.exception) if part)  # unique, in order
        )
        message = f"step {self.name!r} {self.step_status}"
        if explanation:
            message += f": {explanation}"
        super().__init__(message, code=self.step_status, details=error or None)


class WaitTimeoutError(OrchestraError, TimeoutError):
    """Raised by ``wait`` when the step did not settle within the allowed time.

    ``metadata`` is the last metadata document seen (``None`` if none was received).
    """

    def __init__(self, name: str, timeout: float, metadata: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self.metadata: dict[str, Any] | None = dict(metadata) if metadata is not None else None
        status = self.metadata.get("status") if self.metadata else None
        message = f"step {name!r} did not settle within {timeout:g} s"
        if status:
            message += f" (status: {status})"
        super().__init__(message, code="timeout")


_BY_STATUS: dict[int, type[OrchestraError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int) -> type[OrchestraError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return OrchestraError


def error_from_response(status: int, body: Any, text: str = "") -> OrchestraError:
    """Build the typed exception for an error response.

    ``body`` is the decoded JSON body (or ``None``) and ``text`` the raw body, used when the body is not the
    server's error document (a proxy's HTML page, FastAPI's ``{"detail": ...}``).
    """
    message: str | None = None
    code: str | None = None
    details: Any = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = _as_text(error.get("message"))
            code = _as_text(error.get("code"))
            details = error.get("details")
        if not message:
            message = _as_text(body.get("result"))
        if not message and "detail" in body:  # a framework-level error that bypassed the error handler
            detail = body["detail"]
            message = _as_text(detail) if isinstance(detail, str) else _summarize_detail(detail)
            details = details if details is not None else detail
    elif isinstance(body, str):
        message = body
    if not message:
        message = text.strip()[:500] or f"HTTP {status}"
    return error_class(status)(message, status=status, code=code, details=details)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _summarize_detail(detail: Any) -> str:
    """FastAPI's validation ``detail`` list as one line: ``body.name: field required; ...``."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                location = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                text = str(item.get("msg", item))
                parts.append(f"{location}: {text}" if location else text)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)
