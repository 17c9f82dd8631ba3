"""Step operations: create, re-execute (PATCH), delete, cancel, and the lineage graph.

Everything here is validation and metadata; execution belongs to the runtime, which picks up the
``pending`` runs this module queues. The API calls these methods and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automl_orchestra.contracts import catalog, code_policy, references
from automl_orchestra.steps.errors import Conflict, InvalidRequest, NotFound
from automl_orchestra.store.artifacts import ArtifactStore, step_prefix
from automl_orchestra.store.models import ACTIVE, DERIVED_EDGE, DRIVER_EDGE, Edge, Run, Step, utcnow

# Parameters that name an input step directly (Learning Orchestra style) rather than by "$reference".
NAME_FIELDS = ("parentName",)
# A driver step (automl/nas) names itself in ``drivenBy`` of the steps it creates: a lineage edge
# (``DRIVER_EDGE``) that is not an input (the child never waits for its driver, which is running and waiting
# for it).
DRIVER_FIELD = "drivenBy"


@dataclass
class NewStep:
    service: str
    tool: str
    name: str
    parameters: dict[str, Any]
    description: str = ""
    cache: bool = False
    retryable: bool = False
    limits: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # shown in the step's document until its run adds more


T = TypeVar("T")
# How often a re-execution or deletion is tried again when a concurrent one changed the same steps' edges.
ATTEMPTS = 3


def _retried(work: Callable[[], T]) -> T:
    """``work`` (one transaction), again from the start when a concurrent transaction broke a constraint
    under it -- a DELETE removing the parent a PATCH links to, or a PATCH linking to a step being deleted --
    or when the database chose it as the victim of a deadlock with such a transaction (PostgreSQL aborts
    one of two that wait on each other's rows): the next attempt reads the new state and answers what it
    means (404, 422, 409) instead of a 500."""
    for _ in range(ATTEMPTS - 1):
        try:
            return work()
        except (IntegrityError, OperationalError) as exc:
            if not _concurrent(exc):
                raise
    try:
        return work()
    except (IntegrityError, OperationalError) as exc:
        if not _concurrent(exc):
            raise
        raise Conflict("the steps changed under this request several times; try it again") from exc


# SQLSTATEs of a transaction aborted for another one: deadlock detected, serialization failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def _concurrent(exc: Exception) -> bool:
    """Whether ``exc`` is what a concurrent transaction causes (worth a new attempt), not a broken database."""
    if isinstance(exc, IntegrityError):
        return True
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) in TRANSIENT_SQLSTATES or "database is locked" in str(original)


def derived_name(owner: str, output: str) -> str:
    return f"{owner}_{output}"


class StepService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ArtifactStore,
        on_change: Callable[[str], None] = lambda _name: None,
        on_cancel: Callable[[str], None] = lambda _run_id: None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.on_change = on_change
        self.on_cancel = on_cancel

    # ----- queries ---------------------------------------------------------------------------------

    def get(self, name: str) -> Step:
        with self.sessions() as session:
            return self._get(session, name)

    def exists(self, name: str) -> bool:
        with self.sessions() as session:
            return _exists(session, name)

    def get_in(self, name: str, service: str, tool: str) -> Step:
        step = self.get(name)
        if step.service != service or step.tool != tool:
            raise NotFound(f"step {name!r} is a {step.service}/{step.tool} step, not {service}/{tool}")
        return step

    def list_steps(
        self,
        service: str | None = None,
        tool: str | None = None,
        status: str | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> list[Step]:
        query = select(Step).order_by(Step.created_at, Step.name)
        if service:
            query = query.where(Step.service == service)
        if tool:
            query = query.where(Step.tool == tool)
        if status:
            query = query.where(Step.status == status)
        with self.sessions() as session:
            return list(session.scalars(query.offset(skip).limit(limit)))

    def parents(self, name: str) -> list[str]:
        with self.sessions() as session:
            rows = session.scalars(select(Edge.parent).where(Edge.child == name).distinct())
            return sorted(rows)

    def children(self, session: Session, name: str) -> list[str]:
        return sorted(set(session.scalars(select(Edge.child).where(Edge.parent == name))))

    def runs(self, name: str) -> list[Run]:
        with self.sessions() as session:
            self._get(session, name)
            return list(session.scalars(select(Run).where(Run.step_name == name).order_by(Run.number)))

    def run(self, name: str, number: int | None = None) -> Run:
        with self.sessions() as session:
            step = self._get(session, name)
            wanted = number if number is not None else step.current_run
            run = session.scalar(select(Run).where(Run.step_name == name, Run.number == wanted))
            if run is None:
                raise NotFound(f"step {name!r} has no run {wanted}")
            return run

    def lineage(self, name: str) -> tuple[list[Step], list[Edge]]:
        """Every ancestor and descendant of ``name`` with the edges between them."""
        with self.sessions() as session:
            self._get(session, name)
            edges = list(session.scalars(select(Edge)))
            up = _closure(name, edges, lambda e: (e.child, e.parent))
            down = _closure(name, edges, lambda e: (e.parent, e.child))
            names = up | down | {name}
            steps = list(session.scalars(select(Step).where(Step.name.in_(names)).order_by(Step.created_at)))
            kept = [e for e in edges if e.parent in names and e.child in names]
            return steps, kept

    # ----- commands --------------------------------------------------------------------------------

    def create(self, new: NewStep) -> Step:
        return self.create_many([new])[0]

    def create_many(self, steps: list[NewStep]) -> list[Step]:
        """Create ``steps`` in order, in ONE transaction: all of them exist afterwards, or none (a request
        that expands into several steps never leaves half of them behind). A step may reference an earlier
        one of the list."""
        for new in steps:
            if not references.is_valid_name(new.name):
                raise InvalidRequest(f"invalid step name {new.name!r}: it must match ^[A-Za-z][A-Za-z0-9_-]{{0,127}}$")
        names: list[str] = []
        with self.sessions() as session:
            try:
                for new in steps:  # an error leaves the session uncommitted: closing it rolls everything back
                    names += self._insert(session, new)
                session.commit()
            except IntegrityError as exc:  # a concurrent request took a name between check and insert
                session.rollback()
                wanted = repr(steps[0].name) if len(steps) == 1 else f"one of {[new.name for new in steps]}"
                raise Conflict(f"a step named {wanted} already exists") from exc
        self._notify(names)
        with self.sessions() as session:
            return [self._get(session, new.name) for new in steps]

    def _insert(self, session: Session, new: NewStep) -> list[str]:
        """Add ``new``, its derived steps, edges and first run to the open transaction; the names added."""
        derived = catalog.derived_outputs(new.service, new.tool)
        names = [new.name, *(derived_name(new.name, d) for d in derived)]
        taken = [n for n in names if _exists(session, n)]
        if taken:
            raise Conflict(f"a step named {taken[0]!r} already exists; choose another name or PATCH it")
        edges = self._edges(session, new.name, new.parameters)
        step = Step(
            name=new.name,
            service=new.service,
            tool=new.tool,
            status="pending",
            parameters=new.parameters,
            description=new.description,
            cache=new.cache,
            retryable=new.retryable,
            limits=new.limits,
            meta=dict(new.meta),
        )
        session.add(step)
        session.add_all([_derived_step(new.name, output) for output in derived])
        session.flush()  # step rows before the edges and runs that point at them (and before the next step)
        session.add_all(edges)
        session.add_all(
            Edge(parent=new.name, child=derived_name(new.name, output), reference=DERIVED_EDGE) for output in derived
        )
        self._queue_run(session, step)
        session.flush()
        return names

    def update(self, name: str, parameters: dict[str, Any], cascade: bool = False, allow_code: bool = False) -> Step:
        """Re-execute ``name`` with new (complete) parameters; dependents go stale, or re-run in order
        when ``cascade``; steps derived from it always re-run with it. The step runs with the code right
        only when the caller of the re-execution has it (``allow_code``); dependents keep their own."""
        touched, cancelled = _retried(lambda: self._update(name, parameters, cascade, allow_code))
        self._notify(touched, cancelled)
        return self.get(name)

    def _update(
        self, name: str, parameters: dict[str, Any], cascade: bool, allow_code: bool
    ) -> tuple[list[str], list[str | None]]:
        touched: list[str] = []
        cancelled: list[str | None] = []
        with self.sessions() as session:
            step = self._get(session, name)
            if step.owner:
                raise Conflict(f"{name!r} is produced by step {step.owner!r}: re-execute that step instead")
            if step.status in ACTIVE:
                raise Conflict(f"step {name!r} is {step.status}; cancel it or wait before re-executing it")
            descendants = self._descendants(session, name)
            edges = self._edges(session, name, parameters)
            cyclic = sorted({e.parent for e in edges} & set(descendants))
            if cyclic:
                raise InvalidRequest(f"{name!r} cannot depend on its own dependent step {cyclic[0]!r}")
            session.execute(delete(Edge).where(Edge.child == name, Edge.reference != DERIVED_EDGE))
            session.add_all(edges)
            step.parameters = parameters
            # The code right is the caller's, never inherited from the step's creator.
            step.meta = {k: v for k, v in (step.meta or {}).items() if k != code_policy.ALLOW_CODE_META}
            if allow_code:
                step.meta = {**step.meta, code_policy.ALLOW_CODE_META: True}
            self._queue_run(session, step)
            touched.append(name)
            for child_name in descendants:
                child = self._get(session, child_name)
                if child.owner == name or cascade:
                    if child.status in ACTIVE:
                        reason = "superseded by a re-execution of an input step"
                        cancelled.append(self._cancel_active(session, child, reason))
                    if child.owner:
                        child.status = "pending"
                        child.updated_at = utcnow()
                    else:
                        self._queue_run(session, child)
                elif child.status not in ACTIVE:
                    child.status = "stale"
                    child.updated_at = utcnow()
                touched.append(child_name)
            session.commit()
        return touched, cancelled

    def delete(self, name: str, cascade: bool = False) -> list[str]:
        doomed, cancelled = _retried(lambda: self._delete(name, cascade))
        for doomed_name in doomed:
            self.store.delete_prefix(step_prefix(doomed_name))
        self._notify(doomed, cancelled)
        return doomed

    def _delete(self, name: str, cascade: bool) -> tuple[list[str], list[str | None]]:
        with self.sessions() as session:
            step = self._get(session, name)
            if step.owner and not cascade:
                raise Conflict(f"{name!r} is produced by step {step.owner!r}: delete that step instead")
            descendants = self._descendants(session, name)
            independent = [d for d in descendants if self._get(session, d).owner != name]
            if independent and not cascade:
                raise Conflict(
                    f"step {name!r} has dependents {independent}: delete them first or use ?cascade=true",
                    details={"dependents": independent},
                )
            doomed = [name, *descendants]
            cancelled = [
                self._cancel_active(session, doomed_step, "the step was deleted")
                for doomed_step in (self._get(session, n) for n in doomed)
                if doomed_step.status in ACTIVE
            ]
            session.execute(delete(Edge).where(Edge.child.in_(doomed)))
            session.execute(delete(Edge).where(Edge.parent.in_(doomed)))
            session.execute(delete(Run).where(Run.step_name.in_(doomed)))
            session.execute(delete(Step).where(Step.name.in_(doomed)))
            session.commit()
        return doomed, cancelled

    def cancel(self, name: str) -> Step:
        with self.sessions() as session:
            step = self._get(session, name)
            if step.status not in ACTIVE:
                raise Conflict(f"step {name!r} is {step.status}: only pending or running steps can be cancelled")
            cancelled = [self._cancel_active(session, step, "cancelled by request")]
            touched = [name]
            # A driver's children (an automl/nas trial's generate/train/evaluate) and the steps made only for
            # this one (a comparison's engine runs) end with it.
            related = [(child, f"its driver {name!r} was cancelled") for child in self._driven(session, name)]
            related += [(owned, f"{name!r}, which it runs for, was cancelled") for owned in self._owned(session, step)]
            for other, reason in related:
                if other.status in ACTIVE:
                    cancelled.append(self._cancel_active(session, other, reason))
                    touched.append(other.name)
            session.commit()
        self._notify(touched, cancelled)
        return self.get(name)

    def _owned(self, session: Session, step: Step) -> list[Step]:
        spec = catalog.tool(step.tool)
        if spec is None or spec.owned_inputs is None:
            return []
        try:
            names = {ref.step for ref in references.iter_references(step.parameters.get(spec.owned_inputs))}
        except references.ReferenceError_:
            return []
        return list(session.scalars(select(Step).where(Step.name.in_(names))))

    def _driven(self, session: Session, name: str) -> list[Step]:
        children = select(Edge.child).where(Edge.parent == name, Edge.reference == DRIVER_EDGE)
        return list(session.scalars(select(Step).where(Step.name.in_(children))))

    # ----- internals -------------------------------------------------------------------------------

    def _get(self, session: Session, name: str) -> Step:
        step = session.get(Step, name)
        if step is None:
            raise NotFound(f"no step named {name!r}")
        return step

    def _edges(self, session: Session, name: str, parameters: dict[str, Any]) -> list[Edge]:
        """Lineage edges of a parameter set; refuses unknown steps and, where known, unknown attributes."""
        edges: dict[tuple[str, str], Edge] = {}
        for key in NAME_FIELDS:
            parent = parameters.get(key)
            if parent is None:
                continue
            if not isinstance(parent, str) or not references.is_valid_name(parent):
                raise InvalidRequest(f"{key} must be a step name, got {parent!r}")
            self._require_parent(session, name, parent, key)
            edges[(parent, key)] = Edge(parent=parent, child=name, reference=key)
        driver = parameters.get(DRIVER_FIELD)
        if driver is not None:
            if not isinstance(driver, str) or not references.is_valid_name(driver):
                raise InvalidRequest(f"{DRIVER_FIELD} must be a step name, got {driver!r}")
            self._require_parent(session, name, driver, DRIVER_FIELD)
            edges[(driver, DRIVER_EDGE)] = Edge(parent=driver, child=name, reference=DRIVER_EDGE)
        try:
            refs = list(references.iter_references(parameters))
        except references.ReferenceError_ as exc:
            raise InvalidRequest(str(exc)) from exc
        for ref in refs:
            parent_step = self._require_parent(session, name, ref.step, ref.text)
            _check_attribute(parent_step, ref)
            edges[(ref.step, ref.text)] = Edge(parent=ref.step, child=name, reference=ref.text)
        return list(edges.values())

    def _require_parent(self, session: Session, name: str, parent: str, where: str) -> Step:
        if parent == name:
            raise InvalidRequest(f"step {name!r} cannot reference itself ({where})")
        step = session.get(Step, parent)
        if step is None:
            raise NotFound(f"unknown step {parent!r} referenced by {where!r}")
        return step

    def _queue_run(self, session: Session, step: Step) -> Run:
        number = (session.scalar(select(func.max(Run.number)).where(Run.step_name == step.name)) or 0) + 1
        run = Run(
            id=uuid.uuid4().hex,
            step_name=step.name,
            number=number,
            status="pending",
            parameters=step.parameters,
            metrics={},
            meta={},
        )
        session.add(run)
        step.status = "pending"
        step.current_run = number
        step.run_count = number
        step.error = None
        step.updated_at = utcnow()
        return run

    def _cancel_active(self, session: Session, step: Step, reason: str) -> str | None:
        """Cancel the current run: a pending one at once; a running one is flagged, and the instance
        running it stops the worker and records the final state (``on_cancel`` after the commit)."""
        run = session.scalar(select(Run).where(Run.step_name == step.name, Run.number == step.current_run))
        now = utcnow()
        running = run is not None and run.status == "running"
        if run is not None and run.status == "pending":
            claimed = session.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == "pending")
                .values(status="cancelled", reason=reason, finished_at=now)
                .execution_options(synchronize_session=False)
            )
            running = (
                cast(CursorResult[Any], claimed).rowcount == 0
            )  # a scheduler claimed it meanwhile: stop it like a running one
        if run is not None and running:
            run.cancel_requested = True
            run.reason = reason
        else:
            step.status = "cancelled"
            step.error = {"reason": reason, "exception": None, "traceback": None}
        step.updated_at = now
        for derived in session.scalars(select(Step).where(Step.owner == step.name)):
            if derived.status in ACTIVE and not running:
                derived.status = "cancelled"
                derived.updated_at = now
        return run.id if run is not None and running else None

    def _descendants(self, session: Session, name: str) -> list[str]:
        """Descendants in topological order (parents before children)."""
        edges = list(session.scalars(select(Edge)))
        down = _closure(name, edges, lambda e: (e.parent, e.child))
        order: list[str] = []
        seen: set[str] = set()

        def visit(node: str) -> None:
            for edge in edges:
                if edge.parent == node and edge.child in down and edge.child not in seen:
                    seen.add(edge.child)
                    visit(edge.child)
                    order.append(edge.child)

        visit(name)
        return list(reversed(order))

    def _notify(self, names: Iterable[str], cancelled: Iterable[str | None] = ()) -> None:
        for run_id in cancelled:
            if run_id:
                self.on_cancel(run_id)
        for name in names:
            self.on_change(name)


def _exists(session: Session, name: str) -> bool:
    return session.get(Step, name) is not None


def _derived_step(owner: str, output: str) -> Step:
    return Step(
        name=derived_name(owner, output),
        service="dataset",
        tool=output,
        status="pending",
        parameters={"owner": owner, "output": output},
        description=f"{output} of step {owner}",
        owner=owner,
        meta={},
        limits={},
    )


# Output kinds whose attributes are columns or keys (looked up as such by the worker, never with getattr).
KEYED_KINDS = frozenset({"table", "arrays", "json"})


def _check_attribute(parent: Step, ref: references.Reference) -> None:
    """Refuse a reference to an attribute the parent's output does not list and, for every role, any private
    or dunder segment (``$m.__init__``): a ``_``-name is allowed only as the first segment, and only when it is
    a column or key that the parent's finished output lists (``$table._index``)."""
    _check_private(parent, ref)
    if not ref.attrs or not parent.output:
        return
    known = parent.output.get("attributes")
    kind = parent.output.get("kind")
    if known is not None and kind in {"table", "arrays", "json"} and ref.attrs[0] not in known:
        raise InvalidRequest(
            f"{ref.text}: step {parent.name!r} has no attribute {ref.attrs[0]!r}",
            details={"available": known[:100]},
        )


def _check_private(parent: Step, ref: references.Reference) -> None:
    for position, attr in enumerate(ref.attrs):
        if not code_policy.is_private(attr):
            continue
        output = parent.output or {}
        known = output.get("attributes") or []
        if position == 0 and output.get("kind") in KEYED_KINDS and attr in known:
            continue
        raise InvalidRequest(
            f"{ref.text}: references may not reach private or dunder attributes ({attr!r}); a name starting "
            "with '_' is allowed only for a column or key the referenced step's output lists"
        )


def _closure(start: str, edges: list[Edge], direction: Callable[[Edge], tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for edge in edges:
            source, target = direction(edge)
            if source == node and target not in found and target != start:
                found.add(target)
                frontier.append(target)
    return found
