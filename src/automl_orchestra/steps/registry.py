"""The model registry: named models whose versions are frozen copies of a step's trained model.

Registering copies the files of one finished run into ``models/<name>/<version>`` (staged, then moved into place
inside the transaction that inserts the version), so re-running or deleting the step never changes a version.
Each version records where it came from (step, run, parameters, metrics, the runs of its inputs with their
content hashes), how to load it (an ``OutputRef`` over the copy), the library versions of its engine
environment and what it expects and answers (its signature). Facts an engine does not report are ``null``,
never guessed.

Everything here runs in the API process: it reads JSON, Parquet schemas and target columns (pyarrow) and
package metadata (``importlib.metadata``) -- it never imports an ML library.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import os
import platform
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automl_orchestra.contracts import catalog, code_policy, references
from automl_orchestra.contracts.outputs import TABLE_FILE, OutputRef, json_safe
from automl_orchestra.engines.core.tables import friendly_type  # pyarrow only
from automl_orchestra.steps.errors import Conflict, InvalidRequest, NotFound
from automl_orchestra.store.artifacts import ArtifactStore
from automl_orchestra.store.models import Run, Step, utcnow
from automl_orchestra.store.outputs import read_summary
from automl_orchestra.store.registry import AliasMove, ModelAlias, ModelVersion, RegisteredModel

API_PREFIX = "/api/v1"
MODELS_PREFIX = "models"
# Model names follow step names (they become artifact folders and URL segments); aliases are shorter.
MODEL_NAME_PATTERN = references.NAME_PATTERN
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
_MODEL_NAME_RE = re.compile(rf"^{MODEL_NAME_PATTERN}$")
_ALIAS_RE = re.compile(rf"^{ALIAS_PATTERN}$")
# ``name@latest`` resolves to the newest ready version; no alias may take that name.
LATEST = "latest"
RESERVED_ALIASES = frozenset({LATEST})
# Sizes a request may set (422 past them), in the spirit of contracts/parameters.py.
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1_000
MAX_DESCRIPTION = 10_000
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
# More distinct target values than this and the output's classes are not listed (null).
MAX_CLASSES = 1_000
# Services whose 'object' output is a trained model. ``model/*`` holds an untrained estimator (or a PyCaret
# experiment), ``transform``/``explore`` hold fitted transformers, experiments or plots: none is a model to serve.
MODEL_SERVICES = frozenset({"train", "tune", "automl", "evaluate", "nas", "function", "builder"})
# How often a registration or alias move is tried again when a concurrent one took its number or lock.
ATTEMPTS = 8
STATUSES = ("ready", "archived")
# The distributions each engine's models depend on, reported from the engine environment's installed
# metadata (never by importing them). Keyed by the serializer that wrote the model (the tool name).
ENGINE_PACKAGES: dict[str, tuple[str, ...]] = {
    "scikitlearn": ("scikit-learn", "numpy", "pandas", "joblib", "lightgbm", "xgboost"),
    "flaml": ("flaml", "scikit-learn", "lightgbm", "xgboost", "numpy", "pandas", "joblib"),
    "tpot": ("tpot", "scikit-learn", "numpy", "pandas", "joblib"),
    "h2o": ("h2o",),
    "autogluon": ("autogluon.tabular", "autogluon.core", "scikit-learn", "numpy", "pandas"),
    "pycaret": ("pycaret", "scikit-learn", "numpy", "pandas", "joblib"),
    "autokeras": ("autokeras", "keras", "torch"),
    "keras": ("keras", "torch"),
    "train": ("torch", "onnx", "onnxruntime"),  # nas/train networks
    "python": ("numpy", "pandas", "scikit-learn", "joblib"),  # what the builtin serializer pickles with
}
# Method parameters naming the rows a method-call step trained on: ``X`` (scikit-learn style, target apart)
# or a whole frame holding the target (H2O ``training_frame``, AutoGluon ``train_data``).
FEATURE_KEYS = ("X", "x", "X_train")
TARGET_KEYS = ("y", "y_train")
FRAME_KEYS = ("training_frame", "train_data")
TASKS = frozenset({"classification", "regression"})
# AutoGluon's ``problem_type`` (an argument of its model step) names the task in its own words.
_PROBLEM_TYPES = {"binary": "classification", "multiclass": "classification", "regression": "regression"}
_CLASSIFIER_NAMES = frozenset({"LogisticRegression", "SVC", "LinearSVC", "NuSVC", "RidgeClassifierCV"})
_REGRESSOR_NAMES = frozenset({"LinearRegression", "Ridge", "Lasso", "ElasticNet", "SVR", "LinearSVR", "NuSVR"})

T = TypeVar("T")


# ----- names and bounded fields ---------------------------------------------------------------------


def check_model_name(name: str) -> None:
    if not _MODEL_NAME_RE.match(name):
        raise InvalidRequest(f"invalid model name {name!r}: it must match ^{MODEL_NAME_PATTERN}$")


def check_alias(alias: str) -> None:
    if not _ALIAS_RE.match(alias):
        raise InvalidRequest(f"invalid alias {alias!r}: it must match ^{ALIAS_PATTERN}$")
    if alias in RESERVED_ALIASES:
        raise InvalidRequest(f"{alias!r} is reserved: 'name@{LATEST}' always means the newest ready version")


def check_tags(tags: Mapping[str, Any], where: str = "tags") -> None:
    """At most ``MAX_TAGS`` string tags with bounded keys and values."""
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"{where}: {len(tags)} tags; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        if not re.match(TAG_KEY_PATTERN, key):
            raise InvalidRequest(f"{where}: invalid tag name {key!r}: it must match {TAG_KEY_PATTERN}")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidRequest(f"{where}.{key}: a tag value is a string of at most {MAX_TAG_VALUE} characters")


def merged_tags(current: Mapping[str, Any], changes: Mapping[str, str | None]) -> dict[str, Any]:
    """JSON merge-patch of tags: a null value removes the tag, any other sets it."""
    tags = dict(current)
    for key, value in changes.items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    check_tags(tags)
    return tags


def version_prefix(model: str, version: int) -> str:
    return f"{MODELS_PREFIX}/{model}/{version}"


def model_url(model: str) -> str:
    return f"{API_PREFIX}/models/{model}"


def version_url(model: str, version: int) -> str:
    return f"{model_url(model)}/versions/{version}"


# ----- what the API hands over -----------------------------------------------------------------------


@dataclass
class Registration:
    model: str
    step: str
    role: str
    run: int | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Source:
    """The run a registration copies, and whether the step's metadata describes it."""

    step: Step
    run: Run
    ref: OutputRef
    meta: dict[str, Any] | None  # the engine's metadata of this run; None when the step's belongs to another


@dataclass
class Facts:
    """Everything recorded about a version besides its files."""

    engine: str
    environment: str
    serializer: str
    source: dict[str, Any]
    lineage: dict[str, Any]
    libraries: dict[str, Any]
    signature: dict[str, Any]


@dataclass
class Frozen:
    """The staged copy of a run's files."""

    staging: str
    files: list[str]
    size: int
    digest: str


# ----- the service -----------------------------------------------------------------------------------


class RegistryService:
    """Models, versions and aliases over the metadata database and the artifact store.

    ``environments`` maps engine environment names to their interpreters (``Settings.environment_pythons``):
    library versions of another environment are read from its own site-packages.
    """

    def __init__(
        self, sessions: sessionmaker[Session], store: ArtifactStore, environments: Mapping[str, str] | None = None
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.environments = dict(environments or {})

    # ----- reading -----------------------------------------------------------------------------------

    def list_models(self, skip: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        with self.sessions() as session:
            query = select(RegisteredModel).order_by(RegisteredModel.name).offset(skip).limit(limit)
            return [self._model_document(session, model) for model in session.scalars(query)]

    def model(self, name: str) -> dict[str, Any]:
        with self.sessions() as session:
            return self._model_document(session, _model(session, name))

    def versions(self, name: str, skip: int = 0, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        with self.sessions() as session:
            _model(session, name)
            query = select(ModelVersion).where(ModelVersion.model_name == name)
            if status:
                query = query.where(ModelVersion.status == status)
            rows = session.scalars(query.order_by(ModelVersion.version).offset(skip).limit(limit))
            aliases = _aliases_by_version(session, name)
            return [version_document(row, aliases.get(row.version, [])) for row in rows]

    def version(self, name: str, number: int) -> dict[str, Any]:
        with self.sessions() as session:
            row = _version(session, name, number)
            return version_document(row, _aliases_by_version(session, name).get(number, []))

    def resolve(self, name: str, alias: str) -> dict[str, Any]:
        """The version ``alias`` points to (``latest``: the newest ready one), with the alias named."""
        with self.sessions() as session:
            _model(session, name)
            if alias == LATEST:
                row = session.scalars(
                    select(ModelVersion)
                    .where(ModelVersion.model_name == name, ModelVersion.status == "ready")
                    .order_by(ModelVersion.version.desc())
                ).first()
                if row is None:
                    raise NotFound(f"model {name!r} has no ready version")
            else:
                pointer = _alias(session, name, alias)
                row = _version(session, name, pointer.version)
            document = version_document(row, _aliases_by_version(session, name).get(row.version, []))
            return {**document, "resolvedFrom": f"{name}@{alias}"}

    def aliases(self, name: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            _model(session, name)
            rows = session.scalars(select(ModelAlias).where(ModelAlias.model_name == name).order_by(ModelAlias.alias))
            return [alias_document(row) for row in rows]

    def history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every move of ``alias``, oldest first; 404 when the alias never existed."""
        with self.sessions() as session:
            _model(session, name)
            rows = list(
                session.scalars(
                    select(AliasMove)
                    .where(AliasMove.model_name == name, AliasMove.alias == alias)
                    .order_by(AliasMove.id)
                )
            )
            if not rows:
                raise NotFound(f"model {name!r} has never had an alias {alias!r}")
            return [move_document(row) for row in rows]

    def files(self, name: str, number: int) -> tuple[str, list[dict[str, Any]]]:
        """The version's artifact prefix and its files with their sizes."""
        prefix = self.version(name, number)["output"]["prefix"]
        return prefix, [{"name": n, "size": self.store.size(f"{prefix}/{n}")} for n in self.store.list_files(prefix)]

    # ----- registering -------------------------------------------------------------------------------

    def register(self, request: Registration) -> dict[str, Any]:
        """A new version of ``request.model`` (created on first use) from a finished run's model."""
        check_model_name(request.model)
        check_tags(request.tags)
        with self.sessions() as session:
            source = _source(session, request.step, request.run)
            facts = self._facts(session, source)
        frozen = self._stage(request.model, source)
        try:
            number = _retried(lambda: self._insert(request, source, facts, frozen))
        finally:
            self.store.delete_prefix(frozen.staging)  # gone already when the version took it
        return self.version(request.model, number)

    def _stage(self, model: str, source: Source) -> Frozen:
        """Copy the run's output to a staging folder and hash it; the copy must match the run's own hash."""
        staging = f"{MODELS_PREFIX}/{model}/.staging-{uuid.uuid4().hex}"
        gone = Conflict(
            f"the files of run {source.run.number} of step {source.step.name!r} are no longer in the artifact "
            "store (the step was deleted meanwhile?); nothing was registered"
        )
        if not self.store.exists(source.ref.prefix):
            raise gone
        try:
            self.store.copy_prefix(source.ref.prefix, staging)
            files = self.store.list_files(staging)
            size, digest = content_hash(self.store, staging, files)
        except OSError as exc:  # FileNotFoundError included: the step was deleted during the copy
            self.store.delete_prefix(staging)
            raise gone from exc
        expected = source.run.output_hash
        if expected and digest != expected:
            self.store.delete_prefix(staging)
            raise Conflict(
                f"the copied files of step {source.step.name!r} (run {source.run.number}) do not match the hash its "
                "worker recorded: the output changed or is incomplete; nothing was registered"
            )
        return Frozen(staging, files, size, digest)

    def _insert(self, request: Registration, source: Source, facts: Facts, frozen: Frozen) -> int:
        """Insert the version under the model's lock and move its files into place before committing."""
        with self.sessions() as session:
            model = _lock_model(session, request.model, create=True)
            number = model.last_version + 1
            model.last_version = number
            prefix = version_prefix(request.model, number)
            ref = OutputRef(
                kind=source.ref.kind,
                prefix=prefix,
                files=frozen.files,
                environment=facts.environment,
                serializer=facts.serializer,
                attributes=source.ref.attributes,
            )
            session.add(
                ModelVersion(
                    id=uuid.uuid4().hex,
                    model_name=request.model,
                    version=number,
                    status="ready",
                    description=request.description,
                    tags=dict(request.tags),
                    step_name=source.step.name,
                    run_number=source.run.number,
                    run_id=source.run.id,
                    engine=facts.engine,
                    environment=facts.environment,
                    prefix=prefix,
                    files=frozen.files,
                    size_bytes=frozen.size,
                    content_hash=frozen.digest,
                    output=ref.model_dump(),
                    source=facts.source,
                    lineage=facts.lineage,
                    libraries=facts.libraries,
                    signature=facts.signature,
                    registered_by=request.role,
                )
            )
            session.flush()  # a number taken concurrently fails here, before any file moves
            self._publish(frozen.staging, prefix)
            try:
                session.commit()
            except Exception as exc:  # not retried: the staged copy has moved
                self.store.delete_prefix(prefix)
                raise Conflict(f"version {number} of model {request.model!r} could not be recorded: {exc}") from exc
        return number

    def _publish(self, staging: str, target: str) -> None:
        """Move the staged copy to ``target`` (one rename on a local store). Anything already there belongs
        to no version -- numbers are never reused -- and is what a crashed registration or delete left."""
        if self.store.exists(target):
            self.store.delete_prefix(target)
        if self.store.is_local:
            os.rename(self.store.path(staging), self.store.path(target))
        else:
            self.store.fs.mv(self.store.path(staging), self.store.path(target), recursive=True)

    # ----- facts of a version ------------------------------------------------------------------------

    def _facts(self, session: Session, source: Source) -> Facts:
        step, run, ref = source.step, source.run, source.ref
        engine, environment, winner = ref.serializer, ref.environment, None
        if step.tool == "compare":
            winner = self._winner(ref)
            engine = str(winner.get("serializer") or engine)
            spec = catalog.tool(engine)
            environment = spec.environment if spec is not None else environment
        summary = _read_json_safely(lambda: read_summary(self.store, ref))
        lineage = {
            "parameters": json_safe(run.parameters),
            "metrics": json_safe(run.metrics or {}),
            "engineMetadata": _engine_metadata(source.meta),
            "inputs": _inputs(session, run),
            "outputHash": run.output_hash,
            "runFingerprint": run.fingerprint,
            "cachedFrom": run.cached_from,
            "compare": _compare_lineage(source, winner),
        }
        return Facts(
            engine=engine,
            environment=environment,
            serializer=engine,
            source=_source_document(source),
            lineage=lineage,
            libraries=self._libraries(engine, environment, summary),
            signature=Signatures(session, self.store).of(source),
        )

    def _winner(self, ref: OutputRef) -> dict[str, Any]:
        """``compare.json`` of an ``automl/compare`` output: the winning step and the serializer of its model."""
        key = f"{ref.prefix}/compare.json"
        data = _read_json_safely(lambda: json.loads(self.store.open(key).read()) if self.store.exists(key) else {})
        return data if isinstance(data, dict) else {}

    def _libraries(self, engine: str, environment: str, summary: dict[str, Any]) -> dict[str, Any]:
        python = self.environments.get(environment)
        installed = installed_versions(ENGINE_PACKAGES.get(engine, ()), environment, python)
        saved = summary.get("libraryVersions")
        return {
            "environment": environment,
            "python": python_version(environment, python),
            "installed": installed,
            # What the worker that saved the model had imported (builtin serializer only), else null.
            "savedWith": saved if isinstance(saved, dict) else None,
        }

    # ----- changing models and versions --------------------------------------------------------------

    def update_model(
        self, name: str, description: str | None = None, tags: Mapping[str, str | None] | None = None
    ) -> dict[str, Any]:

        def change() -> None:
            with self.sessions() as session:
                model = _lock_model(session, name)
                if description is not None:
                    model.description = description
                if tags is not None:
                    model.tags = merged_tags(model.tags or {}, tags)
                session.commit()

        _retried(change)
        return self.model(name)

    def update_version(
        self,
        name: str,
        number: int,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Description, tags and status of a version (its files and lineage never change)."""

        def change() -> None:
            with self.sessions() as session:
                _lock_model(session, name)
                row = _version(session, name, number)
                if status is not None and status != row.status:
                    if status not in STATUSES:
                        raise InvalidRequest(f"status must be one of {list(STATUSES)}, got {status!r}")
                    if status == "archived":
                        _refuse_if_aliased(session, name, number, "archived")
                    row.status = status
                if description is not None:
                    row.description = description
                if tags is not None:
                    row.tags = merged_tags(row.tags or {}, tags)
                row.updated_at = utcnow()
                session.commit()

        _retried(change)
        return self.version(name, number)

    def delete_version(self, name: str, number: int) -> None:
        """Delete a version and its files; refused while an alias points to it."""

        def remove() -> str:
            with self.sessions() as session:
                _lock_model(session, name)
                row = _version(session, name, number)
                _refuse_if_aliased(session, name, number, "deleted")
                prefix = row.prefix
                session.delete(row)
                session.commit()
                return prefix

        prefix = _retried(remove)
        self.store.delete_prefix(prefix)  # after the commit: a failure leaves unreachable files, never a hole

    # ----- aliases -----------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, number: int, role: str) -> dict[str, Any]:
        """Point ``alias`` at version ``number`` (set or move) and record the move, in one transaction."""
        check_alias(alias)

        def move() -> dict[str, Any]:
            with self.sessions() as session:
                _lock_model(session, name)
                target = _version(session, name, number)
                if target.status != "ready":
                    raise Conflict(
                        f"version {number} of model {name!r} is {target.status}; set its status to 'ready' before "
                        f"pointing {alias!r} at it"
                    )
                pointer = session.get(ModelAlias, (name, alias))
                previous = pointer.version if pointer is not None else None
                now = utcnow()
                if pointer is None:
                    pointer = ModelAlias(model_name=name, alias=alias, version=number, updated_at=now)
                    session.add(pointer)
                elif previous != number:
                    pointer.version, pointer.updated_at = number, now
                if previous != number:  # setting an alias to where it already is moves nothing
                    session.add(AliasMove(model_name=name, alias=alias, from_version=previous, to_version=number,
                                          role=role, at=now))  # fmt: skip
                session.commit()
                return {**alias_document(pointer), "previous": previous}

        return _retried(move)

    def delete_alias(self, name: str, alias: str, role: str) -> dict[str, Any]:
        def remove() -> dict[str, Any]:
            with self.sessions() as session:
                _lock_model(session, name)
                pointer = _alias(session, name, alias)
                document = alias_document(pointer)
                session.add(AliasMove(model_name=name, alias=alias, from_version=pointer.version, to_version=None,
                                      role=role, at=utcnow()))  # fmt: skip
                session.delete(pointer)
                session.commit()
                return document

        return _retried(remove)

    # ----- documents ---------------------------------------------------------------------------------

    def _model_document(self, session: Session, model: RegisteredModel) -> dict[str, Any]:
        counts = session.execute(
            select(func.count(ModelVersion.id), func.max(ModelVersion.version)).where(
                ModelVersion.model_name == model.name
            )
        ).one()
        latest_ready = session.scalar(
            select(func.max(ModelVersion.version)).where(
                ModelVersion.model_name == model.name, ModelVersion.status == "ready"
            )
        )
        aliases = session.scalars(select(ModelAlias).where(ModelAlias.model_name == model.name))
        return {
            "name": model.name,
            "description": model.description,
            "tags": model.tags or {},
            "versions": int(counts[0] or 0),
            "latestVersion": counts[1],
            "latestReadyVersion": latest_ready,
            "aliases": {row.alias: row.version for row in sorted(aliases, key=lambda a: a.alias)},
            "createdAt": _iso(model.created_at),
            "updatedAt": _iso(model.updated_at),
            "url": model_url(model.name),
        }


# ----- documents -------------------------------------------------------------------------------------


def version_document(row: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    return {
        "model": row.model_name,
        "version": row.version,
        "status": row.status,
        "aliases": sorted(aliases),
        "description": row.description,
        "tags": row.tags or {},
        "engine": row.engine,
        "environment": row.environment,
        "source": row.source,
        "output": row.output,
        "files": row.files,
        "sizeBytes": row.size_bytes,
        "contentHash": row.content_hash,
        "lineage": row.lineage,
        "libraries": row.libraries,
        "signature": row.signature,
        "registeredBy": row.registered_by,
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
        "url": version_url(row.model_name, row.version),
    }


def alias_document(row: ModelAlias) -> dict[str, Any]:
    return {
        "model": row.model_name,
        "alias": row.alias,
        "version": row.version,
        "updatedAt": _iso(row.updated_at),
        "url": version_url(row.model_name, row.version),
    }


def move_document(row: AliasMove) -> dict[str, Any]:
    action = "set" if row.from_version is None else "removed" if row.to_version is None else "moved"
    return {
        "alias": row.alias,
        "action": action,
        "fromVersion": row.from_version,
        "toVersion": row.to_version,
        "role": row.role,
        "at": _iso(row.at),
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; every time stored is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


# ----- lookups and locks -----------------------------------------------------------------------------


def _model(session: Session, name: str) -> RegisteredModel:
    model = session.get(RegisteredModel, name)
    if model is None:
        raise NotFound(f"no model named {name!r}")
    return model


def _version(session: Session, name: str, number: int) -> ModelVersion:
    _model(session, name)
    row = session.scalar(select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version == number))
    if row is None:
        raise NotFound(f"model {name!r} has no version {number}")
    return row


def _alias(session: Session, name: str, alias: str) -> ModelAlias:
    pointer = session.get(ModelAlias, (name, alias))
    if pointer is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    return pointer


def _aliases_by_version(session: Session, name: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for row in session.scalars(select(ModelAlias).where(ModelAlias.model_name == name)):
        found.setdefault(row.version, []).append(row.alias)
    return found


def _refuse_if_aliased(session: Session, name: str, number: int, what: str) -> None:
    aliases = sorted(
        session.scalars(select(ModelAlias.alias).where(ModelAlias.model_name == name, ModelAlias.version == number))
    )
    if aliases:
        named = ", ".join(repr(a) for a in aliases)
        raise Conflict(
            f"version {number} of model {name!r} cannot be {what}: alias {named} points to it; move or delete the "
            "alias first",
            details={"aliases": aliases},
        )


def _lock_model(session: Session, name: str, create: bool = False) -> RegisteredModel:
    """The model's row, written first in the transaction: PostgreSQL locks the row and SQLite takes its write
    lock before reading anything, so registrations, alias moves and deletes of one model run one at a time."""
    touched = session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.name == name)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(touched, "rowcount", 0) == 0:
        if not create:
            raise NotFound(f"no model named {name!r}")
        session.add(RegisteredModel(name=name, description="", tags={}, last_version=0))
        session.flush()  # a concurrent first registration fails here and is retried (the row exists then)
    model = session.get(RegisteredModel, name, populate_existing=True)
    if model is None:  # pragma: no cover - the row was just written
        raise NotFound(f"no model named {name!r}")
    return model


def _retried(work: Callable[[], T]) -> T:
    """``work`` (one transaction), again when a concurrent transaction took the same version number or model
    row first (IntegrityError) or SQLite's snapshot went stale under it (OperationalError). Every write of
    the registry goes through here: a success counts as a change (:func:`generation`)."""
    for _ in range(ATTEMPTS - 1):
        try:
            return _changed(work())
        except (IntegrityError, OperationalError):
            continue
    try:
        return _changed(work())
    except (IntegrityError, OperationalError) as exc:
        raise Conflict("the model changed under this request several times; try it again") from exc


_generation = itertools.count(1)
_current_generation = 0


def _changed(result: T) -> T:
    global _current_generation
    _current_generation = next(_generation)
    return result


def generation() -> int:
    """How many registry writes this process made: what serving caches of this process compare to know
    that what they hold may be out of date (``steps/served.py``)."""
    return _current_generation


# ----- the source run --------------------------------------------------------------------------------


def _source(session: Session, step_name: str, run_number: int | None) -> Source:
    """The finished run to register (default: the step's current one), checked to hold a trained model."""
    step = session.get(Step, step_name)
    if step is None:
        raise NotFound(f"no step named {step_name!r}")
    settled_output = step.status in {"finished", "stale"}
    if run_number is None:
        if not settled_output:
            raise Conflict(
                f"step {step_name!r} is {step.status}: only a finished step's model can be registered (wait for it, "
                "or give 'run', the number of a finished run)"
            )
        run_number = step.current_run
    run = session.scalar(select(Run).where(Run.step_name == step_name, Run.number == run_number))
    if run is None:
        raise NotFound(f"step {step_name!r} has no run {run_number}")
    if run.status != "finished" or not run.output:
        raise Conflict(f"run {run_number} of step {step_name!r} is {run.status}: only a finished run can be registered")
    ref = OutputRef.model_validate(run.output)
    _check_is_model(step, ref)
    # The step's metadata is its current run's: it describes this run only when that run is the current one.
    meta = dict(step.meta or {}) if settled_output and run.number == step.current_run else None
    return Source(step=step, run=run, ref=ref, meta=meta)


def _check_is_model(step: Step, ref: OutputRef) -> None:
    kind = f"{step.service}/{step.tool}"
    if ref.kind != "object":
        raise InvalidRequest(
            f"step {step.name!r} ({kind}) holds a {ref.kind} output, not a model: register the step that trained "
            "it (train, tune, automl, nas/train…)"
        )
    if step.service == "model":
        raise InvalidRequest(
            f"step {step.name!r} ({kind}) holds an untrained model: register the train or tune step that fitted it"
        )
    if step.service not in MODEL_SERVICES:
        raise InvalidRequest(
            f"step {step.name!r} ({kind}) holds a {step.service} result, not a trained model: register a train, tune, "
            "evaluate, automl or nas/train step"
        )


def _source_document(source: Source) -> dict[str, Any]:
    step, run = source.step, source.run
    return {
        "step": step.name,
        "service": step.service,
        "tool": step.tool,
        "run": run.number,
        "runId": run.id,
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "stepUrl": f"{API_PREFIX}/{step.service}/{step.tool}/{step.name}",
    }


def _engine_metadata(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the engine reported about this run (best learner, configuration, columns…), without what belongs
    to the step rather than the model."""
    if meta is None:
        return None
    private = {"metrics", "progress", "timeout", code_policy.ALLOW_CODE_META}
    return json_safe({key: value for key, value in meta.items() if key not in private})


def _compare_lineage(source: Source, winner: dict[str, Any] | None) -> dict[str, Any] | None:
    if winner is None:
        return None
    meta = source.meta or {}
    return {
        "bestStep": winner.get("step") or meta.get("bestStep"),
        "bestEngine": meta.get("bestEngine", winner.get("serializer")),
        "bestLearner": meta.get("bestLearner"),
        "metric": meta.get("metric"),
        "bestScore": meta.get("bestScore"),
    }


# ----- inputs and their content --------------------------------------------------------------------


def _input_names(parameters: dict[str, Any]) -> dict[str, list[str]]:
    """Input step -> the references naming it, from the run's own parameters (a re-executed step's edges may
    differ from those of an older run); ``drivenBy`` is lineage, not an input."""
    found: dict[str, list[str]] = {}
    parent = parameters.get("parentName")
    if isinstance(parent, str) and references.is_valid_name(parent):
        found.setdefault(parent, []).append("parentName")
    with contextlib.suppress(references.ReferenceError_):
        for ref in references.iter_references(parameters):
            text = "$" + ".".join((ref.step, *ref.attrs))
            if text not in found.setdefault(ref.step, []):
                found[ref.step].append(text)
    return found


def run_used(session: Session, step_name: str, model_run: Run) -> Run | None:
    """The run of ``step_name`` whose output ``model_run`` read: the newest one finished before it started."""
    started = model_run.started_at or model_run.created_at
    return session.scalars(
        select(Run)
        .where(Run.step_name == step_name, Run.status == "finished", Run.finished_at <= started)
        .order_by(Run.number.desc())
    ).first()


def _inputs(session: Session, run: Run) -> list[dict[str, Any]]:
    entries = []
    for name, refs in sorted(_input_names(run.parameters or {}).items()):
        step = session.get(Step, name)
        entry: dict[str, Any] = {
            "step": name,
            "references": refs,
            "service": step.service if step else None,
            "tool": step.tool if step else None,
            "run": None,
            "runId": None,
            "outputHash": None,
            "fingerprint": None,
            "changedSince": None,
        }
        owner = step.owner if step is not None else None
        used = run_used(session, owner or name, run)
        if used is not None:
            entry.update(run=used.number, runId=used.id, fingerprint=used.fingerprint)
            if owner is None:  # a derived dataset's content is the owner's run's, with no hash of its own
                entry["outputHash"] = used.output_hash
            else:
                entry["owner"] = owner
            current = session.get(Step, owner or name)
            entry["changedSince"] = current is None or current.current_run != used.number
        entries.append(entry)
    return entries


def content_hash(store: ArtifactStore, prefix: str, files: Iterable[str]) -> tuple[int, str]:
    """Total size and the hash of an output folder as ``engines/core/values.output_hash`` computes it (names,
    sizes and bytes of every file, in name order), so a faithful copy has the run's own hash."""
    digest = hashlib.sha256()
    total = 0
    for name in sorted(files):
        key = f"{prefix}/{name}"
        size = store.size(key)
        total += size
        digest.update(f"{name}\0{size}\0".encode())
        with store.open(key) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return total, digest.hexdigest()


def _read_json_safely(read: Callable[[], Any]) -> Any:
    """A small JSON file of an output, or {} when it is missing or unreadable (a fact is then null)."""
    try:
        return read()
    except (OSError, ValueError):
        return {}


# ----- signatures ------------------------------------------------------------------------------------


class Signatures:
    """What a model takes (the columns and types of its training table without the target) and answers
    (task, target, classes), from the engine's metadata and the run's input table; null where unknown."""

    def __init__(self, session: Session, store: ArtifactStore) -> None:
        self.session = session
        self.store = store

    def of(self, source: Source) -> dict[str, Any]:
        step, run, meta = source.step, source.run, source.meta
        if step.tool == "compare":
            return self._compare(source)
        parameters = run.parameters or {}
        used = _used_columns(meta)
        if step.service == "automl" and isinstance(parameters.get("parentName"), str):
            task = (meta or {}).get("task") or parameters.get("task")
            return self._table(run, parameters["parentName"], parameters.get("target"), task, used, "engine metadata")
        if step.service == "nas" and isinstance(parameters.get("data"), str):
            table = _whole_step(parameters["data"])
            classes = (meta or {}).get("classes")
            signature = self._table(run, table, parameters.get("target"), "classification", None, "training table")
            if isinstance(classes, list):
                signature["output"]["classes"] = classes
            return signature
        if step.service in {"train", "tune"}:
            return self._method_call(run, meta)
        return empty_signature(None, None, None, f"{step.service}/{step.tool} reports no signature")

    def _compare(self, source: Source) -> dict[str, Any]:
        """A comparison's model is its best engine step's: that step's signature, when it still holds it."""
        meta = source.meta or {}
        best = meta.get("bestStep")
        step = self.session.get(Step, best) if isinstance(best, str) else None
        if step is None or step.status not in {"finished", "stale"}:
            reason = "the comparison's best step is gone or re-running" if best else "no best step recorded"
            return empty_signature(meta.get("task"), (source.run.parameters or {}).get("target"), None, reason)
        run = self.session.scalar(select(Run).where(Run.step_name == step.name, Run.number == step.current_run))
        if run is None or not run.output:
            return empty_signature(meta.get("task"), None, None, "the comparison's best step has no output")
        inner = Source(step=step, run=run, ref=OutputRef.model_validate(run.output), meta=dict(step.meta or {}))
        signature = self.of(inner)
        signature["source"] = f"{signature.get('source')} of the comparison's best step {step.name!r}"
        return signature

    def _method_call(self, run: Run, meta: dict[str, Any] | None) -> dict[str, Any]:
        """``train``/``tune`` by method call: the rows of ``X`` (target apart) or of a training frame."""
        parameters = run.parameters or {}
        arguments = parameters.get("methodParameters") or {}
        model = self._model_parameters(parameters)
        task = _method_task(arguments, model, str((meta or {}).get("class") or model.get("(class)") or ""))
        features = next((key for key in FEATURE_KEYS if isinstance(arguments.get(key), str)), None)
        if features is not None:
            given = next((arguments[key] for key in TARGET_KEYS if key in arguments), None)
            table = _whole_step(arguments[features])
            target = self._target_of(run, given)
            return self._table(run, table, target, task, None, f"training table ({features})", target_ref=given)
        frame = next((arguments[k] for k in FRAME_KEYS if isinstance(arguments.get(k), str)), None)
        if frame is not None:
            label = model.get("label")  # AutoGluon's label is an argument of its model step
            target = arguments.get("y") if isinstance(arguments.get("y"), str) else label
            x = arguments.get("x")
            used = [str(c) for c in x] if isinstance(x, list) else None
            return self._table(run, _whole_step(frame), target, task, used, "training frame")
        return empty_signature(task, None, None, "the training rows are not a table reference")

    def _model_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The class arguments of the model step a method call trained, with its class as ``(class)``."""
        parent = parameters.get("parentName")
        step = self.session.get(Step, parent) if isinstance(parent, str) else None
        if step is None:
            return {}
        arguments = (step.parameters or {}).get("classParameters")
        found = dict(arguments) if isinstance(arguments, dict) else {}
        found["(class)"] = (step.meta or {}).get("class")
        return found

    def _target_of(self, run: Run, value: Any) -> str | None:
        """The target column a ``y`` reference names: ``$table.column``, or the one column of ``$table``."""
        if not isinstance(value, str):
            return None
        try:
            ref = references.parse(value)
        except references.ReferenceError_:
            return None
        if ref is None:
            return None
        if len(ref.attrs) == 1:
            return ref.attrs[0]
        if ref.attrs:
            return None
        table = self._table_ref(ref.step, run)
        names = (table.attributes or []) if table is not None else []
        return names[0] if len(names) == 1 else None

    def _table(
        self,
        run: Run,
        table: str | None,
        target: Any,
        task: Any,
        used: list[str] | None,
        source: str,
        *,
        target_ref: Any = None,
    ) -> dict[str, Any]:
        """The signature over table step ``table`` as ``run`` read it: ``used`` columns (default: all but the
        target); the classes from the target column, or from ``target_ref`` when the target was given apart."""
        target = target if isinstance(target, str) else None
        task = task if task in TASKS else None
        ref = self._table_ref(table, run) if table else None
        if ref is None:
            return empty_signature(task, target, None, f"{source}: the training rows are not a table of this run")
        schema = self._schema(ref)
        if schema is None:
            return empty_signature(task, target, None, f"{source}: the training table cannot be read")
        columns = used if used is not None else [name for name in schema if name != target]
        inputs = [{"name": c, **schema.get(c, {"type": None, "arrowType": None})} for c in columns]
        classes = None
        if task == "classification" and target_ref is not None:
            classes = self._classes_of_reference(run, target_ref)
        elif task == "classification" and target and target in schema:
            classes = self._classes(ref, target)
        return {"inputs": inputs, "output": {"task": task, "target": target, "classes": classes}, "source": source}

    def _classes_of_reference(self, run: Run, value: Any) -> list[Any] | None:
        """Classes of a target given apart: ``$table.column``, or ``$table`` of one column."""
        try:
            ref = references.parse(value) if isinstance(value, str) else None
        except references.ReferenceError_:
            return None
        if ref is None or len(ref.attrs) > 1:
            return None
        table = self._table_ref(ref.step, run)
        if table is None:
            return None
        names = table.attributes or []
        column = ref.attrs[0] if ref.attrs else (names[0] if len(names) == 1 else None)
        return self._classes(table, column) if column else None

    def _table_ref(self, name: str, run: Run) -> OutputRef | None:
        """The output ``run`` read from table step ``name``: the run of it used, else a derived step's own."""
        step = self.session.get(Step, name)
        if step is None:
            return None
        used = run_used(self.session, name, run) if step.owner is None else None
        output = used.output if used is not None else (step.output if step.owner else None)
        if not output:
            return None
        ref = OutputRef.model_validate(output)
        return ref if ref.kind == "table" else None

    def _schema(self, ref: OutputRef) -> dict[str, dict[str, str]] | None:
        import pyarrow.parquet as pq

        try:
            with self.store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
                schema = pq.read_schema(handle)
        except (OSError, ValueError):
            return None
        return {f.name: {"type": friendly_type(f.type), "arrowType": str(f.type)} for f in schema}

    def _classes(self, ref: OutputRef, column: str) -> list[Any] | None:
        """The distinct non-null values of the target column (read one row group at a time), sorted; None past
        ``MAX_CLASSES`` or when unreadable."""
        import pyarrow.parquet as pq

        seen: set[Any] = set()
        try:
            with self.store.open(f"{ref.prefix}/{TABLE_FILE}") as handle:
                parquet = pq.ParquetFile(handle)
                if column not in parquet.schema_arrow.names:
                    return None
                for group in range(parquet.num_row_groups):
                    values = parquet.read_row_group(group, columns=[column]).column(0).unique().to_pylist()
                    seen.update(json_safe(v) for v in values if v is not None)
                    if len(seen) > MAX_CLASSES:
                        return None
        except (OSError, ValueError, TypeError):
            return None
        return sorted(seen, key=lambda v: (type(v).__name__, v))


def empty_signature(task: Any, target: Any, classes: Any, reason: str) -> dict[str, Any]:
    return {
        "inputs": None,
        "output": {
            "task": task if task in {"classification", "regression"} else None,
            "target": target if isinstance(target, str) else None,
            "classes": classes,
        },
        "source": None,
        "reason": reason,
    }


def _used_columns(meta: dict[str, Any] | None) -> list[str] | None:
    """The feature columns an automl engine reported (``columns.used``; AutoKeras: ``features``)."""
    if not meta:
        return None
    columns = meta.get("columns")
    used = columns.get("used") if isinstance(columns, dict) else meta.get("features")
    return [str(c) for c in used] if isinstance(used, list) else None


def _whole_step(value: str) -> str | None:
    """The step a ``"$step"`` reference names when it means the whole output (not a column of it)."""
    try:
        ref = references.parse(value)
    except references.ReferenceError_:
        return None
    return ref.step if ref is not None and not ref.attrs else None


def _method_task(arguments: dict[str, Any], model: dict[str, Any], qualified: str) -> str | None:
    """The task a method-call training states: FLAML's ``fit(task=…)``, AutoGluon's ``problem_type``, or the
    estimator's class name; None when none of them says."""
    stated = arguments.get("task")
    if stated in TASKS:
        return str(stated)
    problem = model.get("problem_type")
    if isinstance(problem, str) and problem in _PROBLEM_TYPES:
        return _PROBLEM_TYPES[problem]
    return _task_of_class(qualified)


def _task_of_class(qualified: str) -> str | None:
    """The task scikit-learn's naming convention states (``…Classifier``, ``…Regressor``, and a few classic
    names); None for anything else (a pipeline, a search…)."""
    name = qualified.rsplit(".", 1)[-1]
    if name.endswith("Classifier") or name in _CLASSIFIER_NAMES:
        return "classification"
    if name.endswith("Regressor") or name in _REGRESSOR_NAMES:
        return "regression"
    return None


# ----- library versions ------------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _site_packages(python: str) -> list[str]:
    """The site-packages of the virtualenv ``python`` belongs to (``…/bin/python`` -> ``…/lib/python*/…``)."""
    root = Path(python).parent.parent
    return [str(path) for path in sorted(root.glob("lib/python*/site-packages"))]


def installed_versions(packages: Iterable[str], environment: str, python: str | None) -> dict[str, str | None]:
    """Installed versions of ``packages`` in an engine environment, from package metadata (nothing is
    imported); None for a package that is not installed there."""
    wanted = list(packages)
    if not wanted:
        return {}
    # None: this interpreter's own packages (the main environment is the server's); []: nowhere to look.
    paths: list[str] | None = None
    if environment != "main":
        paths = _site_packages(python) if python is not None else []
    found: dict[str, str] = {}
    if paths is None:
        for package in wanted:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[_normalized(package)] = importlib.metadata.version(package)
    elif paths:
        for dist in importlib.metadata.distributions(path=paths):
            name = dist.metadata["Name"] if dist.metadata else None
            if name:
                found.setdefault(_normalized(name), dist.version)
    return {package: found.get(_normalized(package)) for package in wanted}


def python_version(environment: str, python: str | None) -> str | None:
    if environment == "main":
        return platform.python_version()
    if python is None:
        return None
    config = Path(python).parent.parent / "pyvenv.cfg"
    with contextlib.suppress(OSError):
        for line in config.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in {"version", "version_info"}:
                return value.strip()
    return None


__all__ = [
    "Registration",
    "RegistryService",
    "alias_document",
    "check_alias",
    "check_model_name",
    "content_hash",
    "installed_versions",
    "move_document",
    "version_document",
]
