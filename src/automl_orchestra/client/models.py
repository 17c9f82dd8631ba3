"""The model registry: register a step's trained model as an immutable version, move aliases, roll back.

    with ModelRegistry("http://127.0.0.1:8080") as registry:
        v1 = registry.register("adult", "adult_flaml", tags={"team": "risk"})
        registry.set_alias("adult", "champion", v1["version"])
        registry.resolve("adult", "champion")        # the version document champion points to
        registry.history("adult", "champion")        # every move: when, by which role, from and to

Errors are the client's typed errors (``NotFoundError`` for an unknown model, version or alias,
``ConflictError`` for a step that is not finished or a version an alias points to, ``ValidationError`` for
a bad name or a step whose output is not a model, ``PermissionDeniedError`` for a viewer's change).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from automl_orchestra.client.http import Client, ClientOwner, Metadata, MetadataList

__all__ = ["ModelRegistry"]


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


def _json_ready(record: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON allows it: a missing value (NaN, as pandas writes one) is null."""
    return {str(key): None if _missing(value) else value for key, value in record.items()}


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class ModelRegistry(ClientOwner):
    """A wrapper over ``/models``; a :class:`Client` is created unless one is given."""

    def __init__(self, url: str | None = None, token: str | None = None, *, client: Client | None = None) -> None:
        super().__init__(client, lambda: Client(url, token))

    # ----- models --------------------------------------------------------------------------------------

    def list(self, *, skip: int = 0, limit: int = 100) -> MetadataList:
        """Registered models by name: versions, latest version, aliases."""
        result: MetadataList = self.client.call("GET", "/models", params={"skip": skip, "limit": limit})
        return result

    def iter_models(self, page_size: int = 100) -> Iterator[Metadata]:
        skip = 0
        while True:
            page = self.list(skip=skip, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            skip += len(page)

    def get(self, name: str) -> Metadata:
        """A model's document; ``"name@alias"`` resolves an alias to its version's document instead."""
        result: Metadata = self.client.call("GET", f"/models/{_segment(name)}")
        return result

    def update(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str | None] | None = None
    ) -> Metadata:
        """Change a model's description and tags (merged; a ``None`` value removes a tag)."""
        return self._patch(f"/models/{_segment(name)}", description=description, tags=tags)

    # ----- versions ------------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        step: str,
        *,
        run: int | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Metadata:
        """A new version of ``name`` from ``step``'s model (default: its current, finished run)."""
        body: dict[str, Any] = {"name": name, "step": step}
        if run is not None:
            body["run"] = run
        if description is not None:
            body["description"] = description
        if tags:
            body["tags"] = dict(tags)
        # Registration copies the model's files server-side: allow for a large model.
        timeout = httpx.Timeout(self.client.timeout, read=max(self.client.timeout, 600.0))
        result: Metadata = self.client.call("POST", "/models", json_body=body, timeout=timeout)
        return result

    def versions(self, name: str, *, status: str | None = None, skip: int = 0, limit: int = 100) -> MetadataList:
        """Versions of a model, oldest first (``status``: only ``ready`` or ``archived`` ones)."""
        params = {"status": status, "skip": skip, "limit": limit}
        result: MetadataList = self.client.call("GET", f"/models/{_segment(name)}/versions", params=params)
        return result

    def version(self, name: str, version: int) -> Metadata:
        """A version: source step and run, lineage, library versions, signature, files."""
        result: Metadata = self.client.call("GET", self._version_path(name, version))
        return result

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        status: str | None = None,
    ) -> Metadata:
        return self._patch(self._version_path(name, version), description=description, tags=tags, status=status)

    def archive(self, name: str, version: int) -> Metadata:
        """Archive a version (it stays readable; refused while an alias points to it)."""
        return self.update_version(name, version, status="archived")

    def restore(self, name: str, version: int) -> Metadata:
        """Make an archived version ready again."""
        return self.update_version(name, version, status="ready")

    def delete_version(self, name: str, version: int) -> Any:
        """Delete a version and its files (refused while an alias points to it)."""
        return self.client.call("DELETE", self._version_path(name, version))

    def files(self, name: str, version: int) -> MetadataList:
        """``[{"name": "model.joblib", "size": 1234}, ...]``: the version's frozen files."""
        result: MetadataList = self.client.call("GET", f"{self._version_path(name, version)}/files")
        return result

    def read_file(self, name: str, version: int, file: str) -> bytes:
        response = self.client.request(
            "GET",
            f"{self._version_path(name, version)}/files/{quote(file, safe='/')}",
            timeout=httpx.Timeout(self.client.timeout, read=max(self.client.timeout, 300.0)),
        )
        return response.content

    def download(self, name: str, version: int, dest: str | os.PathLike[str]) -> Path:
        """Every file of a version into the folder ``dest`` (created); returns it."""
        folder = Path(dest)
        for item in self.files(name, version):
            target = folder / str(item["name"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_file(name, version, str(item["name"])))
        return folder

    # ----- aliases -------------------------------------------------------------------------------------

    def aliases(self, name: str) -> MetadataList:
        result: MetadataList = self.client.call("GET", f"/models/{_segment(name)}/aliases")
        return result

    def resolve(self, name: str, alias: str) -> Metadata:
        """The version ``alias`` points to (``"latest"``: the newest ready version)."""
        result: Metadata = self.client.call("GET", self._alias_path(name, alias))
        return result

    def set_alias(self, name: str, alias: str, version: int) -> Metadata:
        """Point ``alias`` at ``version`` (set or move; the move is recorded); ``previous`` is where it was."""
        result: Metadata = self.client.call("PUT", self._alias_path(name, alias), json_body={"version": version})
        return result

    def delete_alias(self, name: str, alias: str) -> Any:
        return self.client.call("DELETE", self._alias_path(name, alias))

    def history(self, name: str, alias: str) -> MetadataList:
        """Every move of ``alias``, oldest first: ``{action, fromVersion, toVersion, role, at}``."""
        result: MetadataList = self.client.call("GET", f"{self._alias_path(name, alias)}/history")
        return result

    # ----- online prediction ---------------------------------------------------------------------------

    def predict(
        self,
        name: str,
        rows: Any,
        *,
        version: int | None = None,
        probabilities: bool | None = None,
    ) -> Metadata:
        """Predictions of a served version for ``rows`` (one ``{column: value}`` dict, a list of them, or a
        pandas DataFrame): ``{model, version, task, rows, predictions, classes, probabilities}``.

        ``name`` is a model (its newest ready version) or ``"name@alias"``; ``version`` picks one version.
        Bad rows raise ``ValidationError`` naming the columns; an overloaded server ``RateLimitError``.
        """
        records = rows.to_dict(orient="records") if hasattr(rows, "to_dict") else rows
        if isinstance(records, Mapping):
            body: dict[str, Any] = {"record": _json_ready(records)}
        else:
            body = {"records": [_json_ready(record) for record in records]}
        path = self._version_path(name, version) if version is not None else f"/models/{_segment(name)}"
        params = {} if probabilities is None else {"probabilities": str(probabilities).lower()}
        result: Metadata = self.client.call("POST", f"{path}/predict", params=params, json_body=body)
        return result

    # ----- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _version_path(name: str, version: int) -> str:
        return f"/models/{_segment(name)}/versions/{_segment(version)}"

    @staticmethod
    def _alias_path(name: str, alias: str) -> str:
        return f"/models/{_segment(name)}/aliases/{_segment(alias)}"

    def _patch(self, path: str, **fields: Any) -> Metadata:
        body = {key: value for key, value in fields.items() if value is not None}
        result: Metadata = self.client.call("PATCH", path, json_body=body)
        return result
