"""Limits on what one request can make large, checked before a route reads anything.

``BodyLimits`` is a pure ASGI middleware: it refuses a NUL byte in the path or query string (422), reads a
non-multipart body up to ``MAX_BODY_BYTES`` as it arrives (413 past it, without holding the rest in memory),
and refuses a JSON body nested deeper than ``MAX_JSON_DEPTH`` or holding ``NaN`` / ``Infinity`` (422) --
before any JSON parser recurses into it. A multipart upload streams through, counted as it arrives: past
``ORCHESTRA_MAX_UPLOAD_MB`` (plus ``FORM_SLACK_BYTES`` for the form's other fields) the rest is read on and
thrown away, never stored, and the route reading it gets a 413 -- so a refused upload leaves nothing on disk
and holds at most the limit. Sizes inside a body (list lengths, strings, keys) are the request models'
(``contracts/parameters.py``).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from automl_orchestra.api.errors import ApiError, error_response

# The largest JSON (or other non-multipart) body, in bytes. A module constant rather than a setting: the
# largest valid body is a code step's 1,000,000-character ``code`` (JSON-escaped, with its parameters), far
# below it. Raise it here if a deployment sends larger inline data.
MAX_BODY_BYTES = 4 * 2**20
# How deep any JSON value in a body may nest (objects and arrays), the body itself being level 1.
MAX_JSON_DEPTH = 32
# A body over the limit is read on and thrown away up to this size, so the client gets the 413 rather than
# a reset connection; past it the connection is answered at once.
DRAIN_BYTES = 64 * 2**20
# The largest ``skip`` of a page (keeps it within the database's 64-bit integers) and run number.
MAX_SKIP = 10**12
MAX_RUN_NUMBER = 10**9
# Room in a multipart body for its boundaries and its small form fields, on top of the upload limit.
FORM_SLACK_BYTES = 2**20
# The upload limit when the app has no settings (a bare ``BodyLimits`` in a test).
DEFAULT_UPLOAD_MB = 1024

# Routes whose body is rows to predict (api/routes_serving.py, api/routes_inference.py).
PREDICT_PATH = re.compile(r"/(predict|infer)$")

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NON_FINITE = re.compile(rb"NaN|Infinity")


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing (or recursing into) it."""
    brackets = _STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def json_problem(data: bytes) -> str | None:
    """Why a JSON text is refused before it is parsed, or None."""
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        return f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} levels are allowed"
    if _NON_FINITE.search(data) and _NON_FINITE.search(_STRING.sub(b'""', data)):
        return "NaN and Infinity are not JSON numbers; send a number, null or a string"
    return None


class BodyLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"").lower():
            await _reply(scope, receive, send, 422, "a NUL byte is not allowed in a path or query string")
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "")
        has_body = "content-length" in headers or "transfer-encoding" in headers
        declared = headers.get("content-length", "")
        if has_body and content_type.startswith("multipart/form-data"):
            upload_mb = _upload_mb(scope)
            limit = upload_mb * 2**20 + FORM_SLACK_BYTES
            too_large = f"the upload is larger than the limit of {upload_mb} MB"
            if declared.isdigit() and int(declared) > limit:
                await _reply(scope, receive, send, 413, too_large)
                return
            await self.app(scope, _counted(receive, limit, too_large), send)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        limit = _body_limit(scope)
        too_large = f"the request body is larger than the limit of {limit} bytes ({limit // 2**20} MiB)"
        if declared.isdigit() and int(declared) > max(limit, DRAIN_BYTES):
            await _reply(scope, receive, send, 413, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > max(limit, DRAIN_BYTES):
                break
            else:
                chunks.clear()
            if not message.get("more_body", False):
                break
        if size > limit:
            await _reply(scope, receive, send, 413, too_large)
            return
        body = b"".join(chunks)
        # Rows to predict are not parsed in this process: the serving worker's parser has its own depth limit
        # and refuses NaN (a 422), and scanning a batch here would cost more than predicting it.
        if body and ("json" in content_type or not content_type) and not PREDICT_PATH.search(scope.get("path", "")):
            problem = json_problem(body)
            if problem:
                await _reply(scope, receive, send, 422, f"invalid request body: {problem}")
                return
        await self.app(scope, _replay(body, receive), send)


def _body_limit(scope: Scope) -> int:
    """The largest body of this request: a predict or infer request's is ``ORCHESTRA_SERVING_MAX_BODY_MB``
    (a batch of rows), every other one ``MAX_BODY_BYTES``."""
    if not PREDICT_PATH.search(scope.get("path", "")):
        return MAX_BODY_BYTES
    orchestra = getattr(getattr(scope.get("app"), "state", None), "orchestra", None)
    return int(orchestra.settings.serving_max_body_mb) * 2**20 if orchestra is not None else MAX_BODY_BYTES


def _upload_mb(scope: Scope) -> int:
    """This server's upload limit (``ORCHESTRA_MAX_UPLOAD_MB``), read from the app the request is for."""
    orchestra = getattr(getattr(scope.get("app"), "state", None), "orchestra", None)
    return int(orchestra.settings.max_upload_mb) if orchestra is not None else DEFAULT_UPLOAD_MB


def _counted(receive: Receive, limit: int, too_large: str) -> Receive:
    """``receive`` that counts the body as it arrives and, past ``limit``, throws the rest away unread into
    anything (up to ``DRAIN_BYTES``, so the client still gets the answer) and raises a 413 in the route."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                await _drain(receive, message)
                raise ApiError(413, too_large, headers={"Connection": "close"})
        return message

    return counted


async def _drain(receive: Receive, message: Message) -> None:
    drained = 0
    while message.get("more_body", False) and drained < DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    response: Any = error_response(status, message, headers={"Connection": "close"} if status == 413 else None)
    await response(scope, receive, send)
