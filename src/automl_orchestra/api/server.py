"""``orchestra serve``: run the API (and its scheduler) with uvicorn."""

from __future__ import annotations

import uvicorn

from automl_orchestra.api.app import create_app
from automl_orchestra.api.observability import configure_logging
from automl_orchestra.config import Settings


def serve(settings: Settings) -> None:
    configure_logging(settings.log_format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=None,  # uvicorn's records go through configure_logging's handler
        access_log=False,  # api/observability.py logs each request, with its id
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":  # python -m automl_orchestra.api.server, configured by ORCHESTRA_* variables
    import sys

    try:
        serve(Settings())
    except ValueError as exc:
        sys.exit(f"orchestra: {exc}")
