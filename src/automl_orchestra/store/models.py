"""Metadata tables. The ``runs`` table doubles as the job queue: a ``pending`` run is a queued job, so
nothing is lost when the server restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("pending", "running", "finished", "failed", "cancelled", "stale")
SETTLED = frozenset({"finished", "failed", "cancelled", "stale"})
ACTIVE = frozenset({"pending", "running"})
# ``Edge.reference`` of lineage edges that are not inputs: a derived step to its owner, and a child step to
# the driver that created it (neither waits for the other's output).
DERIVED_EDGE = "(derived)"
DRIVER_EDGE = "(driver)"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Step(Base):
    __tablename__ = "steps"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    service: Mapped[str] = mapped_column(String(32), index=True)
    tool: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    cache: Mapped[bool] = mapped_column(Boolean, default=False)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    current_run: Mapped[int] = mapped_column(Integer, default=0)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    step_name: Mapped[str] = mapped_column(String(128), ForeignKey("steps.name", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exception: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cached_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    output_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1)


class Edge(Base):
    """A lineage edge: ``child``'s parameters reference ``parent`` (``reference`` is the exact text)."""

    __tablename__ = "edges"

    parent: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    child: Mapped[str] = mapped_column(
        String(128), ForeignKey("steps.name", ondelete="CASCADE"), primary_key=True, index=True
    )
    reference: Mapped[str] = mapped_column(String(512), primary_key=True)


class Instance(Base):
    """A running API/scheduler process; its heartbeat tells others whether its running steps are alive.

    ``pid``, ``process_started`` (when that process started: ``runtime.supervisor.process_start``) and
    ``pid_namespace`` (boot id and PID namespace) let an instance on the same machine see at once that another
    one's process is gone, without waiting for its heartbeat to go stale; rows written before they existed
    have them empty and keep the heartbeat rule."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    process_started: Mapped[float | None] = mapped_column(Float, nullable=True)
    pid_namespace: Mapped[str | None] = mapped_column(String(128), nullable=True)
