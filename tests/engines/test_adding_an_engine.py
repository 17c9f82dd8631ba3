"""Adding an engine is one folder under ``engines/`` plus one ``ToolSpec`` in ``contracts/catalog.py``
(docs/architecture.md, "Add an engine"): done here to a copy of the package, then used through a real server
whose ``api/`` and ``runtime/`` are untouched."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import automl_orchestra
from tests.api.helpers import content, post, upload
from tests.conftest import ServerHandle, base_env

PARAMETERS = '''"""The request of ``explore/rowstats``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from automl_orchestra.contracts.parameters import StepBody


class RowStatsBody(StepBody):
    example: ClassVar[dict[str, Any]] = {"name": "numbers_stats", "parentName": "numbers"}

    parentName: str
    statistics: list[str] = Field(default=["mean", "min", "max"], min_length=1)
'''
ENGINE = '''"""The ``rowstats`` tool: ``explore/rowstats`` describes the numeric columns of a dataset."""

from __future__ import annotations

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.rowstats.parameters import RowStatsBody


class RowStats(Engine):
    name = "rowstats"

    def explore(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(RowStatsBody)
        frame = ctx.load_step(request.parentName)
        numeric = frame.select_dtypes("number")
        try:
            table = numeric.agg(request.statistics).T.reset_index(names="column")
        except (AttributeError, TypeError, ValueError) as exc:
            raise StepError(f"statistics {request.statistics}: {exc}") from None
        return StepResult(value=table, metadata={"rows": len(frame), "numericColumns": len(numeric.columns)})
'''
CATALOG_ENTRY = """        ToolSpec(
            name="rowstats",
            services=("explore",),
            implementation="automl_orchestra.engines.rowstats.engine:RowStats",
            parameters={"explore": "automl_orchestra.engines.rowstats.parameters:RowStatsBody"},
            description="mean, min and max of every numeric column",
        ),
"""
TOOLS_OPENING = "TOOLS: dict[str, ToolSpec] = {\n    spec.name: spec\n    for spec in (\n"


@pytest.fixture
def extended_server(tmp_path: Path) -> Iterator[ServerHandle]:
    source = tmp_path / "src" / "automl_orchestra"
    shutil.copytree(Path(automl_orchestra.__file__).parent, source, ignore=shutil.ignore_patterns("__pycache__"))
    folder = source / "engines" / "rowstats"
    folder.mkdir()
    (folder / "__init__.py").write_text('"""The rowstats tool."""\n')
    (folder / "engine.py").write_text(ENGINE)
    (folder / "parameters.py").write_text(PARAMETERS)
    catalog = source / "contracts" / "catalog.py"
    text = catalog.read_text()
    assert text.count(TOOLS_OPENING) == 1, "the catalog no longer opens TOOLS as the guide says"
    catalog.write_text(text.replace(TOOLS_OPENING, TOOLS_OPENING + CATALOG_ENTRY))

    home = tmp_path / "home"
    home.mkdir()
    # The copy comes first on the path of the server and of the workers it starts.
    env = base_env(home, PYTHONPATH=str(source.parent))
    handle = ServerHandle(home=home, env=env).start()
    yield handle
    handle.stop(kill=True)


def test_a_new_engine_folder_and_catalog_entry_make_a_working_tool(
    extended_server: ServerHandle, tmp_path: Path
) -> None:
    data = tmp_path / "numbers.csv"
    data.write_text("a,b,label\n1,10,x\n2,20,y\n3,30,x\n")
    with extended_server.client() as http:
        paths = httpx.get(f"{extended_server.url}/openapi.json").json()["paths"]
        assert any(path.endswith("/explore/rowstats") for path in paths), sorted(paths)
        upload(http, "numbers", data)
        assert extended_server.wait("numbers")["status"] == "finished"

        post(http, "/explore/rowstats", {"name": "numbers_stats", "parentName": "numbers"})
        document = extended_server.wait("numbers_stats")

        assert document["status"] == "finished", document
        assert document["parents"] == ["numbers"]
        assert document["rows"] == 3 and document["numericColumns"] == 2
        rows = content(http, "/explore/rowstats/numbers_stats")[1:]
        assert rows == [
            {"column": "a", "mean": 2.0, "min": 1.0, "max": 3.0},
            {"column": "b", "mean": 20.0, "min": 10.0, "max": 30.0},
        ]
        # The tool's own request model validates bodies at POST: a misspelt field is a 422, not a failed run.
        refused = http.post("/explore/rowstats", json={"name": "numbers_bad", "parentName": "numbers", "stats": []})
        assert refused.status_code == 422 and "stats" in refused.text, refused.text
        post(http, "/explore/rowstats", {"name": "numbers_odd", "parentName": "numbers", "statistics": ["nope"]})
        failed = extended_server.wait("numbers_odd")
        assert failed["status"] == "failed" and "statistics ['nope']" in failed["error"]["reason"], failed
