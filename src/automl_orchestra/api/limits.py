"""Limits on what one request can make large, checked before a route reads anything.

``BodyLimits`` is a pure ASGI middleware: it refuses a NUL byte in the path or query string (422), reads a
non-multipart body up to ``MAX_BODY_BYTES`` as it arrives (413 past it, without holding the rest in memory),
and refuses a JSON body nested deeper than ``MAX_JSON_DEPTH`` or holding ``NaN`` / ``Infinity`` (422) --
before any JSON parser recurses into it. Multipart uploads stream through untouched: the dataset route caps
them with ``ORCHESTRA_MAX_UPLOAD_MB``. Sizes inside a body (list lengths, strings, keys) are the request
models' (``contracts/parameters.py``).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from automl_orchestra.api.errors import error_response

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
    if _NON_FINITE.search(_STRING.sub(b'""', data)):
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
        if not has_body or content_type.startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        too_large = (
            f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes ({MAX_BODY_BYTES // 2**20} MiB)"
        )
        if declared.isdigit() and int(declared) > DRAIN_BYTES:
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
            if size <= MAX_BODY_BYTES:
                chunks.append(chunk)
            elif size > DRAIN_BYTES:
                break
            else:
                chunks.clear()
            if not message.get("more_body", False):
                break
        if size > MAX_BODY_BYTES:
            await _reply(scope, receive, send, 413, too_large)
            return
        body = b"".join(chunks)
        if body and ("json" in content_type or not content_type):
            problem = json_problem(body)
            if problem:
                await _reply(scope, receive, send, 422, f"invalid request body: {problem}")
                return
        await self.app(scope, _replay(body, receive), send)


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
