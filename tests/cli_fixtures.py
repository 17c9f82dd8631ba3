"""Fixtures of the command-line tests: a client and ``run(*argv)`` on the shared real server. A test module
imports the ones it uses (pytest finds fixtures imported into a module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from automl_orchestra.cli import main
from automl_orchestra.client import Client


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token="", timeout=60) as orchestra:
        yield orchestra


@pytest.fixture
def run(server: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    """``run("ls", "--service", "model")`` -> (exit status, stdout, stderr) of the command on the server."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--url", server.url, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
