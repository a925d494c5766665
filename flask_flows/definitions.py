"""A per-process cache of flow definitions, checked against ``Flow.revision``.

Every flow request needs the flow, its bindings, their stages and all policy bindings.
Loading that graph costs several queries; checking that a cached copy is current costs
one small one (slug → id, revision). Cached graphs are fully loaded and detached from
any session, and treated as read-only by the planner, executor and stages.
"""

from __future__ import annotations

from threading import Lock
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload, scoped_session, selectinload

from .models import Flow, FlowStageBinding, PolicyBinding


class FlowDefinitions:
    """Loads flows by slug, re-reading the graph only when its revision changed."""

    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, Flow] = {}
        self._lock = Lock()

    def load(self, session: Session | scoped_session[Any], slug: str) -> Flow | None:
        row = session.execute(sa.select(Flow.id, Flow.revision).where(Flow.slug == slug)).first()
        if row is None:
            return None
        cached = self._entries.get(slug)
        if cached is not None and cached.id == row.id and cached.revision == row.revision:
            return cached
        flow = self._load_graph(session, row.id)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[slug] = flow
        return flow

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @staticmethod
    def _load_graph(session: Session | scoped_session[Any], flow_id: int) -> Flow:
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
        for obj in _graph(flow):
            if obj in session:
                session.expunge(obj)
        return flow


def _graph(flow: Flow) -> list[Any]:
    objects: list[Any] = [flow]
    policy_bindings = list(flow.policy_bindings)
    for binding in flow.bindings:
        objects.extend([binding, binding.stage])
        policy_bindings.extend(binding.policy_bindings)
    for policy_binding in policy_bindings:
        objects.append(policy_binding)
        objects.extend(o for o in (policy_binding.policy, policy_binding.group) if o is not None)
    return objects
