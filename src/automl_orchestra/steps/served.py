"""Which registered version answers a predict request: ``name`` (the newest ready version), ``name@alias`` or
``name/versions/n``.

:class:`ServedVersions` remembers an answer for ``TTL_S`` (a lookup is a query, about a millisecond: more than
the rest of the API's share of a prediction) and forgets everything as soon as this process changes the
registry, so a request after an alias move, a registration or a delete made here sees it at once; a change
made by another API instance is seen within ``TTL_S``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from automl_orchestra.contracts.serving import ServedVersion
from automl_orchestra.steps.errors import NotFound
from automl_orchestra.steps.registry import LATEST, generation
from automl_orchestra.store.registry import ModelAlias, ModelVersion, RegisteredModel

_COLUMNS = (
    ModelVersion.version,
    ModelVersion.environment,
    ModelVersion.output,
    ModelVersion.signature,
    ModelVersion.status,
)


def served_version(
    sessions: sessionmaker[Session], name: str, alias: str | None = None, number: int | None = None
) -> ServedVersion:
    """The version a request names; 404 naming what is missing (the model, the alias or the version)."""
    with sessions() as session:
        query = select(*_COLUMNS).where(ModelVersion.model_name == name)
        if number is not None:
            query = query.where(ModelVersion.version == number)
        elif alias is None or alias == LATEST:
            query = query.where(ModelVersion.status == "ready").order_by(ModelVersion.version.desc()).limit(1)
        else:
            query = query.join(
                ModelAlias,
                (ModelAlias.model_name == ModelVersion.model_name) & (ModelAlias.version == ModelVersion.version),
            ).where(ModelAlias.alias == alias)
        row = session.execute(query).first()
        if row is None:
            if session.get(RegisteredModel, name) is None:  # 404 for the model itself first
                raise NotFound(f"no model named {name!r}")
            if number is not None:
                raise NotFound(f"model {name!r} has no version {number}")
            if alias is None or alias == LATEST:
                raise NotFound(f"model {name!r} has no ready version")
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        version, environment, output, signature, status = row
        return ServedVersion(
            model=name, version=version, environment=environment, output=output, signature=signature, status=status
        )


TTL_S = 1.0
MAX_ENTRIES = 10_000

Key = tuple[str, str | None, int | None]


@dataclass(frozen=True)
class _Entry:
    version: ServedVersion
    generation: int
    expires: float


class ServedVersions:
    """:func:`served_version` with a short memory (see the module)."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = TTL_S) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._entries: dict[Key, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, name: str, alias: str | None = None, number: int | None = None) -> ServedVersion | None:
        """The remembered answer, None when there is none still good."""
        entry = self._entries.get((name, alias, number))
        if entry is None or entry.generation != generation() or entry.expires < time.monotonic():
            return None
        return entry.version

    def lookup(self, name: str, alias: str | None = None, number: int | None = None) -> ServedVersion:
        """The version, read from the database (a 404 is not remembered) and remembered."""
        current = generation()
        version = served_version(self.sessions, name, alias, number)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[(name, alias, number)] = _Entry(version, current, time.monotonic() + self.ttl_s)
        return version
