"""Change notifications for observers (long-poll and SSE) in the API process.

Threads (the scheduler, request handlers) call ``publish(name)``; coroutines ``await wait(name, timeout)``.
The database stays the source of truth: a waiter re-reads the step after every wake-up, and waits are
short enough that a change made by another API instance is seen by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator


class EventHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, name: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(name, ()))
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for event in waiters:
            loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def subscription(self, name: str) -> Iterator[asyncio.Event]:
        """Register before reading the state, so no change between the read and the wait is missed."""
        event = asyncio.Event()
        with self._lock:
            self._waiters[name].add(event)
        try:
            yield event
        finally:
            with self._lock:
                self._waiters[name].discard(event)
                if not self._waiters[name]:
                    del self._waiters[name]


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
    except TimeoutError:
        return False
    event.clear()
    return True
