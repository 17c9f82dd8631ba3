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

ENGINE = '''"""The ``rowstats`` tool: ``explore/rowstats`` describes the numeric columns of a dataset."""

from __future__ import annotations

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult


class RowStats(Engine):
    name = "rowstats"

    def explore(self, ctx: StepContext) -> StepResult:
        if ctx.params["method"] != "describe":
            raise StepError(f"rowstats has one method, 'describe', not {ctx.params['method']!r}")
        frame = ctx.load_step(ctx.params["parentName"])
        numeric = frame.select_dtypes("number")
        table = numeric.agg(["mean", "min", "max"]).T.reset_index(names="column")
        return StepResult(value=table, metadata={"rows": len(frame), "numericColumns": len(numeric.columns)})
'''
CATALOG_ENTRY = """        ToolSpec(
            name="rowstats",
            services=("explore",),
            implementation="automl_orchestra.engines.rowstats.engine:RowStats",
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

        post(http, "/explore/rowstats", {"name": "numbers_stats", "parentName": "numbers", "method": "describe"})
        document = extended_server.wait("numbers_stats")

        assert document["status"] == "finished", document
        assert document["parents"] == ["numbers"]
        assert document["rows"] == 3 and document["numericColumns"] == 2
        rows = content(http, "/explore/rowstats/numbers_stats")[1:]
        assert rows == [
            {"column": "a", "mean": 2.0, "min": 1.0, "max": 3.0},
            {"column": "b", "mean": 20.0, "min": 10.0, "max": 30.0},
        ]
        post(http, "/explore/rowstats", {"name": "numbers_bad", "parentName": "numbers", "method": "plot"})
        failed = extended_server.wait("numbers_bad")
        assert failed["status"] == "failed" and "one method, 'describe'" in failed["error"]["reason"], failed
