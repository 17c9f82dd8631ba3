"""Fixtures of the client tests: a Client on the shared real server, unique step names, small CSV files."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automl_orchestra.client import Client

COLORS = ("red", "green", "blue")
ROWS = 60  # rows of csv_file


def write_csv(path: Path, rows: int = ROWS) -> Path:
    """A small, deterministic, linearly separable classification table: x1, x2, color, label."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "color", "label"])
        for i in range(rows):
            x1 = (i % 10) / 2.0
            x2 = (i * 7 % 11) / 3.0
            writer.writerow([x1, x2, COLORS[i % 3], int(x1 + x2 > 4.0)])
    return path


@pytest.fixture
def uid() -> str:
    """A prefix that makes this test's step names unique on the shared server."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "data.csv")


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token=server.token or "", timeout=60) as orchestra:
        yield orchestra
