"""A per-process cache of flow definitions, checked against ``Flow.revision``.

Every flow request needs the flow, its bindings, their stages and all policy bindings.
Loading that graph costs several queries; checking that a cached copy is current costs
one small one (slug → id, revision), and even that is needed at most once every
``FLOWS_DEFINITION_CHECK_SECONDS`` per flow: a change committed through the ORM in this
process (admin views, ``flask flows apply``, tests) bumps a process-wide generation that
invalidates every cached answer at once, so only changes made by other processes wait
for the interval. Cached graphs are fully loaded and detached from any session, and
treated as read-only by the planner, executor and stages.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from threading import Lock
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload, object_session, scoped_session, selectinload

from .models import Flow, FlowStageBinding, PolicyBinding, Stage

Value = TypeVar("Value")
AnySession = Session | scoped_session[Any]

_generations = itertools.count(1)
_generation = 0


def definitions_changed() -> None:
    """Invalidate every cached definition answer in this process (called after a commit
    that changed a flow, binding, stage, policy or policy binding)."""
    global _generation
    _generation = next(_generations)


@dataclass(frozen=True)
class _Entry(Generic[Value]):
    value: Value
    generation: int
    checked: float


class FlowDefinitions:
    """Loads flows by slug, re-reading the graph only when its revision changed, and
    checking the revision at most once per check interval."""

    def __init__(self, max_entries: int = 1000, check_seconds: float = 0.0) -> None:
        self.max_entries = max_entries
        self.check_seconds = check_seconds
        self._flows: dict[str, _Entry[Flow]] = {}
        self._lock = Lock()

    def load(self, session: AnySession, slug: str, *, recheck: bool = False) -> Flow | None:
        cached = self._flows.get(slug)
        if cached is not None and not recheck and self._fresh(cached):
            return cached.value
        generation = _generation  # before the query: a change committed meanwhile wins
        row = session.execute(sa.select(Flow.id, Flow.revision).where(Flow.slug == slug)).first()
        if row is None:
            self._flows.pop(slug, None)
            return None
        if (
            cached is not None
            and cached.value.id == row.id
            and cached.value.revision == row.revision
        ):
            flow = cached.value
        else:
            flow = self._load_graph(session, row.id)
        self._store(self._flows, slug, _Entry(flow, generation, time.monotonic()))
        return flow

    def clear(self) -> None:
        with self._lock:
            self._flows.clear()

    def _fresh(self, entry: _Entry[Any]) -> bool:
        return (
            entry.generation == _generation
            and time.monotonic() - entry.checked < self.check_seconds
        )

    def _store(self, entries: dict[str, _Entry[Any]], key: str, entry: _Entry[Any]) -> None:
        with self._lock:
            if len(entries) >= self.max_entries and key not in entries:
                entries.clear()
            entries[key] = entry

    @staticmethod
    def _load_graph(session: AnySession, flow_id: int) -> Flow:
        policy_binding_options = (
            joinedload(PolicyBinding.policy),
            joinedload(PolicyBinding.group),
        )
        flow = session.scalars(
            sa.select(Flow)
            .where(Flow.id == flow_id)
            .options(
                selectinload(Flow.policy_bindings).options(*policy_binding_options),
                selectinload(Flow.bindings).options(
                    joinedload(FlowStageBinding.stage),
                    selectinload(FlowStageBinding.policy_bindings).options(*policy_binding_options),
                ),
            )
            .execution_options(populate_existing=True)
        ).one()
        names = {
            binding.stage.config.get(option)
            for binding in flow.bindings
            for option in REFERENCING_OPTIONS.get(binding.stage.type, ())
        } - {None}
        found: Any = session.scalars(sa.select(Stage).where(Stage.name.in_(names))) if names else ()
        flow._flows_referenced_stages = {stage.name: stage for stage in found}  # type: ignore[attr-defined]
        for obj in _graph(flow):
            if obj in session:
                session.expunge(obj)
        return flow


#: Stage options that name another stage, which then belongs to the flow's definition:
#: loaded with it, and a change to it bumps the flow's revision (flask_flows.revisions).
REFERENCING_OPTIONS: dict[str, tuple[str, ...]] = {
    "identification": ("password_stage", "webauthn_stage")
}


def referenced_stage(flow: Flow, name: str) -> Stage | None:
    """The stage called ``name`` that a stage of ``flow`` names in an option (see
    :data:`REFERENCING_OPTIONS`), as loaded with the flow; ``None`` when there is none.
    A flow not loaded through this cache (built in Python) looks it up afresh."""
    loaded: dict[str, Stage] | None = getattr(flow, "_flows_referenced_stages", None)
    if loaded is not None:
        return loaded.get(name)
    session = object_session(flow)
    return session.scalar(sa.select(Stage).where(Stage.name == name)) if session else None


def _graph(flow: Flow) -> list[Any]:
    objects: list[Any] = [flow, *getattr(flow, "_flows_referenced_stages", {}).values()]
    policy_bindings = list(flow.policy_bindings)
    for binding in flow.bindings:
        objects.extend([binding, binding.stage])
        policy_bindings.extend(binding.policy_bindings)
    for policy_binding in policy_bindings:
        objects.append(policy_binding)
        objects.extend(o for o in (policy_binding.policy, policy_binding.group) if o is not None)
    return objects
