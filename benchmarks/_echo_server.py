"""The trivial endpoint of the serving benchmark: what moving a request's bytes costs over HTTP, without a model.

    python benchmarks/_echo_server.py PORT

Served by uvicorn with the settings of ``automl_orchestra.api.server`` (uvicorn's defaults: uvloop and
httptools when installed), so the HTTP stack is the API's. ``POST /`` reads the whole body and answers
``X-Answer-Bytes`` bytes of JSON (a string of spaces: the size of the prediction answer it stands for);
``GET /`` answers ``{}`` (readiness). Nothing is parsed: the time a client measures is the transfer alone.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # the whole request body, as the predict route reads it
        message = await receive()
        more = bool(message.get("more_body"))
    headers = dict(scope["headers"])
    size = int(headers.get(b"x-answer-bytes", b"2"))
    body = b'"' + b" " * max(size - 2, 0) + b'"' if size >= 2 else b"{}"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
