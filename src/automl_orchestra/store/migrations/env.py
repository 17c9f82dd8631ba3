"""Alembic environment: runs on the connection handed over by ``store.db.upgrade``."""

from __future__ import annotations

from alembic import context

from automl_orchestra.store import registry  # noqa: F401 - its tables join Base.metadata
from automl_orchestra.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through store.db.upgrade
    raise RuntimeError("run migrations through automl_orchestra.store.db.upgrade()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
