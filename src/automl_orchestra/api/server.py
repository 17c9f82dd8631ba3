"""``orchestra serve``: run the API (and its scheduler) with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from automl_orchestra.api.app import create_app
from automl_orchestra.config import Settings


def serve(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)


if __name__ == "__main__":  # python -m automl_orchestra.api.server, configured by ORCHESTRA_* variables
    import sys

    try:
        serve(Settings())
    except ValueError as exc:
        sys.exit(f"orchestra: {exc}")
