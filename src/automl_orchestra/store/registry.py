"""Model registry tables: named models, their immutable versions, aliases and every alias move.

A version's files are a frozen copy under ``models/<name>/<version>`` in the artifact store (never the step's
run folder, which a DELETE of the step removes), so nothing here points at a step by foreign key: the step
may be re-run or deleted and the version stays whole. The tables share ``store.models.Base`` so one metadata
(and one Alembic history) covers the whole database; ``migrations/env.py`` imports this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from automl_orchestra.store.models import Base, utcnow

VERSION_STATUSES = ("ready", "archived")


class RegisteredModel(Base):
    """A named model: the container of versions. Its row is also the lock that serializes registrations and
    alias moves of one model (each such transaction updates it first)."""

    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The highest number ever given, deleted versions included: a number never names two different models.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ModelVersion(Base):
    """One registered version: where its frozen files are, how to load them, where they came from."""

    __tablename__ = "model_versions"
    # Two concurrent registrations that pick the same number: one insert fails and is retried with the next.
    __table_args__ = (UniqueConstraint("model_name", "version", name="uq_model_versions_model_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("registered_models.name", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The source, kept as plain values: the step may be deleted later.
    step_name: Mapped[str] = mapped_column(String(128), index=True)
    run_number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(String(32))
    engine: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(512))
    files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    output: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the OutputRef that loads the copy
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    libraries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    registered_by: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelAlias(Base):
    """A movable name (``champion``, ``staging``…) for one version of a model."""

    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasMove(Base):
    """One change of an alias (set, moved or removed): append-only, so "which version was champion on
    Tuesday" has an answer."""

    __tablename__ = "model_alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("registered_models.name", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
