"""Waiting for steps over REST: a long poll with a real timeout, and a Server-Sent Events stream.

Both subscribe to change notifications *before* reading the step, so a change between the read and the
wait is never missed; both re-read the database on every wake-up and at least once a second, so changes
made by another API instance are seen too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from automl_orchestra.api import examples
from automl_orchestra.api.dependencies import Orchestra, OrchestraDep, require_viewer
from automl_orchestra.contracts.references import NAME_PATTERN
from automl_orchestra.runtime.events import wait_for
from automl_orchestra.steps.documents import step_document
from automl_orchestra.steps.errors import NotFound
from automl_orchestra.store.models import SETTLED

MAX_TIMEOUT_S = 300.0
RECHECK_S = 1.0
KEEPALIVE_S = 15.0


def router() -> APIRouter:
    # Every route here reads: one role for the whole router, settled before any step is read.
    api = APIRouter(tags=["observe"], dependencies=[Depends(require_viewer)])
    name_path = Path(pattern=f"^{NAME_PATTERN}$")

    @api.get(
        "/observe/{name}",
        summary="Wait until the step is finished, failed, cancelled or stale",
        responses=examples.ok(examples.OBSERVED),
    )
    async def observe(
        orchestra: OrchestraDep,
        name: str = name_path,
        timeout: float = Query(
            60.0, ge=0, le=MAX_TIMEOUT_S, allow_inf_nan=False, description="seconds to wait at most"
        ),
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with orchestra.hub.subscription(name) as changed:
            while True:
                document = await _document(orchestra, name)
                remaining = deadline - time.monotonic()
                if document["status"] in SETTLED or remaining <= 0:
                    return {"result": document, "timedOut": document["status"] not in SETTLED}
                await wait_for(changed, min(remaining, RECHECK_S))

    @api.get(
        "/observe/{name}/events",
        summary="Server-Sent Events: one 'status' event per change",
        responses={200: {"content": {"text/event-stream": {"example": _event("status", examples.METADATA)}}}},
    )
    async def events(request: Request, orchestra: OrchestraDep, name: str = name_path) -> StreamingResponse:
        await _document(orchestra, name)  # 404 before the stream starts
        return StreamingResponse(
            _stream(request, orchestra, name),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api


async def _stream(request: Request, orchestra: Orchestra, name: str) -> AsyncIterator[str]:
    last: str | None = None
    idle_since = time.monotonic()
    with orchestra.hub.subscription(name) as changed:
        while not await request.is_disconnected():
            try:
                document = await _document(orchestra, name)
            except NotFound:
                yield _event("deleted", {"name": name})
                return
            text = json.dumps(document)
            if text != last:
                last, idle_since = text, time.monotonic()
                yield _event("status", document)
                if document["status"] in SETTLED:
                    return
            elif time.monotonic() - idle_since > KEEPALIVE_S:
                idle_since = time.monotonic()
                yield ": keep-alive\n\n"
            await wait_for(changed, RECHECK_S)


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def _document(orchestra: Orchestra, name: str) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        step = orchestra.service.get(name)
        return step_document(step, orchestra.service.parents(name))

    return await asyncio.to_thread(read)
