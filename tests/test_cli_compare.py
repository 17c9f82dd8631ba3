"""``orchestra compare`` against a real server: create a comparison, print its table, show it again as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl_orchestra.cli import main
from tests.api.helpers import upload
from tests.conftest import ServerHandle
from tests.data import titanic_like


def test_compare_creates_and_prints_the_table(
    fresh_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_server.client() as http:
        upload(http, "clic_data", titanic_like(tmp_path / "t.csv", rows=300))
    argv = ["--url", fresh_server.url, "compare", "clic"]
    create = ["--dataset", "clic_data", "--target", "Survived", "--engines", "flaml,tpot", "--budget", "5"]
    assert main([*argv, *create, "--metric", "accuracy"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["ENGINE", "STATUS", "MODEL", "CV"]
    assert lines[1].split()[:2] == ["flaml", "finished"] and "accuracy" in lines[1]
    # TPOT one-hot encodes the text columns; in 5 s it finishes, or fails saying its budget was too short
    assert lines[2].split()[0] == "tpot" and ("finished" in lines[2] or "raise timeBudget" in lines[2])

    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["engine"] for row in rows] == ["flaml", "tpot"] and 0.5 < rows[0]["holdoutScore"] <= 1.0

    assert main([*argv[:-1], "clic2", "--dataset", "clic_data"]) == 2  # --target is required
    assert "--target" in capsys.readouterr().err
