"""A real HTTP server on 127.0.0.1 serving a folder: the loopback source of the files dataset steps
download in tests (the test servers allow-list 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def serving(root: Path, handler: type[http.server.SimpleHTTPRequestHandler] | None = None) -> Iterator[int]:
    """Serve ``root`` (with ``handler``, a ``SimpleHTTPRequestHandler`` that may add routes) while inside;
    yields the port."""
    base = handler or http.server.SimpleHTTPRequestHandler

    class Quiet(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
