"""The layers of ``automl_orchestra``, enforced on the real import graph (grimp, the graph import-linter
builds on): api -> steps -> runtime -> engines -> {store, nas, client} -> {contracts, config}.

An import that points up a layer, between two packages of one floor, between two engine folders, or from an
engine to the metadata database fails here, and so does any circle of files. See docs/architecture.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest

PACKAGE = "automl_orchestra"
# Floors, lowest first. A package may import packages of lower floors only; packages on one floor are
# independent of each other. ``automl_orchestra`` itself (the version string) is below everything.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("contracts", "config"),
    ("store", "nas", "client"),
    ("engines",),
    ("runtime",),
    ("steps",),
    ("api",),
    ("cli",),
    ("__main__",),
)
FLOOR_OF = {package: level for level, floor in enumerate(FLOORS) for package in floor}
# What an engine may import of the store: the artifact files, never the metadata database.
ENGINE_STORE_MODULES = frozenset({f"{PACKAGE}.store.artifacts", f"{PACKAGE}.store.outputs"})
HEAVY = ("pandas", "sklearn", "torch", "keras", "flaml", "h2o", "autogluon", "tpot", "tsfresh", "lightgbm", "xgboost")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # TYPE_CHECKING imports do not run, so they cannot form a circle or load a layer at run time.
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)


def imports(graph: grimp.ImportGraph) -> Iterator[tuple[str, str]]:
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            yield importer, imported


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def engine_folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "engines" else None


def test_every_package_has_a_floor(graph: grimp.ImportGraph) -> None:
    packages = {package_of(module) for module in graph.modules} - {None}
    assert len(graph.modules) > 100 and len(packages) >= 9  # the graph is the real one, not an empty package
    assert packages <= set(FLOOR_OF), f"packages without a floor in FLOORS: {packages - set(FLOOR_OF)}"


def test_no_import_points_up_or_across_a_floor(graph: grimp.ImportGraph) -> None:
    wrong = []
    for importer, imported in imports(graph):
        source, target = package_of(importer), package_of(imported)
        if source is None or target is None or source == target:
            continue
        if FLOOR_OF[target] >= FLOOR_OF[source]:
            wrong.append(f"{importer} -> {imported}")
    assert not wrong, "imports that point up or across a floor:\n" + "\n".join(wrong)


def test_engine_folders_use_only_the_core_and_themselves(graph: grimp.ImportGraph) -> None:
    wrong = []
    for importer, imported in imports(graph):
        source, target = engine_folder(importer), engine_folder(imported)
        if source is None or target is None or source == target:
            continue
        if target != "core":
            wrong.append(f"{importer} -> {imported}")
    assert not wrong, "an engine folder imports another engine:\n" + "\n".join(wrong)


def test_engines_never_touch_the_metadata_database(graph: grimp.ImportGraph) -> None:
    wrong = [
        f"{importer} -> {imported}"
        for importer, imported in imports(graph)
        if package_of(importer) in {"engines", "nas", "contracts"}
        and package_of(imported) == "store"
        and imported not in ENGINE_STORE_MODULES
    ]
    assert not wrong, "\n".join(wrong)


def test_no_circle_of_files(graph: grimp.ImportGraph) -> None:
    circles = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert not circles, f"modules that import each other in a circle: {circles}"


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (the graph is a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            if position < len(successors):
                work.append((node, position + 1))
                child = successors[position]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def test_the_api_process_imports_no_ml_library(tmp_path: object) -> None:
    """Building the whole app (routes, scheduler, executor) and every tool's request model loads no engine
    library: they live in workers."""
    code = (
        "import sys\n"
        "from automl_orchestra.api.app import create_app\n"
        "from automl_orchestra.config import Settings\n"
        f"create_app(Settings(home={str(tmp_path)!r}, warm_workers=0))\n"
        "from automl_orchestra.contracts import catalog\n"
        "from automl_orchestra.engines.core.requests import request_model\n"
        "models = [request_model(s, t.name) for t in catalog.TOOLS.values() if t.implementation for s in t.services]\n"
        "assert len(models) > 40, len(models)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
