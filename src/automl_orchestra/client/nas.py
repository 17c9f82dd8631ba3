"""Neural architecture search from Python: the ``nas`` service (generate / train / evaluate as separate
steps) and the ``automl/nas`` scheduler with its leaderboard, comparison table and plot.

with NasService("http://127.0.0.1:8080") as nas:
    nas.search("digits_nas", "digits", generators=["random", "evolution", "tpe"], trials=8,
               control={"epochs": 3}, constraints={"maxParameters": 20000})
    nas.comparison("digits_nas")          # one row per generator
    nas.plot("digits_nas")                # PNG bytes: best accuracy over time
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl_orchestra.client.http import Client, ClientOwner, Metadata

ROWS_PAGE = 100


class NasService(ClientOwner):
    """A thin wrapper over ``/nas/{generate,train,evaluate}`` and ``/automl/nas``; it creates a
    :class:`Client` unless one is given. Methods wait for the step unless ``wait=False``."""

    def __init__(self, url: str | None = None, token: str | None = None, *, client: Client | None = None) -> None:
        super().__init__(client, lambda: Client(url, token))

    # ----- the three services -------------------------------------------------------------------------

    def generate(
        self,
        name: str,
        space: Mapping[str, Any],
        generator: str = "random",
        history: list[Mapping[str, Any]] | None = None,
        *,
        seed: int = 1,
        wait: bool = True,
        **fields: Any,
    ) -> Metadata | str:
        """Propose a model spec (``$name.spec``) from ``history`` (``[{"genome", "score"}]``)."""
        body = {
            "name": name,
            "generator": generator,
            "space": dict(space),
            "history": list(history or []),
            "seed": seed,
        }
        return self._create("nas", "generate", {**body, **fields}, wait)

    def train(
        self, name: str, spec: Mapping[str, Any] | str, data: str, *, wait: bool = True, **fields: Any
    ) -> Metadata | str:
        """Train a spec (an object or ``"$gen.spec"``) on the dataset step ``data`` (``"$digits"``)."""
        return self._create("nas", "train", {"name": name, "spec": spec, "data": _ref(data), **fields}, wait)

    def evaluate(self, name: str, trained: str, data: str, *, wait: bool = True, **fields: Any) -> Metadata | str:
        """Test metrics, instrumentation and an ONNX export of the ``nas/train`` step ``trained``."""
        body = {"name": name, "parentName": trained, "data": _ref(data), **fields}
        return self._create("nas", "evaluate", body, wait)

    # ----- the scheduler --------------------------------------------------------------------------------

    def search(
        self,
        name: str,
        dataset: str,
        generators: list[str] | None = None,
        trials: int = 10,
        time_budget: float = 600.0,
        *,
        wait: bool = True,
        max_wait: float | None = None,
        **fields: Any,
    ) -> Metadata | str:
        """``automl/nas``: each generator runs generate -> train -> evaluate child steps under one budget."""
        body = {"name": name, "parentName": dataset, "trials": trials, "timeBudget": time_budget, **fields}
        if generators is not None:
            body["generators"] = list(generators)
        return self._create("automl", "nas", body, wait, max_wait)

    def leaderboard(self, name: str) -> list[dict[str, Any]]:
        """Every trial of a search: generator, accuracy, score, parameters, latency, child step names."""
        return self._rows(f"{name}_leaderboard", "leaderboard")

    def comparison(self, name: str) -> list[dict[str, Any]]:
        """One row per generator: best accuracy, accuracy over time, parameters and latency of its best."""
        return self._rows(f"{name}_comparison", "comparison")

    def plot(self, name: str) -> bytes:
        """The PNG comparing the generators (best accuracy so far against time)."""
        return self.client.read_artifact(name, "comparison.png")

    def children(self, name: str) -> list[str]:
        """The child steps a search created (lineage edges marked ``(driver)``)."""
        edges = self.client.lineage(name).get("edges", [])
        return sorted(e["child"] for e in edges if e["parent"] == name and e["reference"] == "(driver)")

    # ----- internals ------------------------------------------------------------------------------------

    def _create(
        self, service: str, tool: str, body: Mapping[str, Any], wait: bool, max_wait: float | None = None
    ) -> Metadata | str:
        step = self.client.create_step(service, tool, body)
        return self.client.wait(step, timeout=max_wait) if wait else step

    def _rows(self, name: str, tool: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self.client.content("dataset", tool, name, skip=len(rows), limit=ROWS_PAGE)[1:]
            rows.extend(page)
            if len(page) < ROWS_PAGE:
                return rows


def _ref(step: str) -> str:
    return step if step.startswith("$") else f"${step}"
