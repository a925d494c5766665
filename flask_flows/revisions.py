"""Keeps ``Flow.revision`` current whenever a flow's definition changes.

Running plans and cached plans carry the revision they were built from; bumping it on
every change to the flow, its bindings, their stages or the policies bound to them is
what lets the executor restart stale plans and the planner drop stale cache entries
without any explicit invalidation call. A commit that changed any of them also tells
this process's definition caches (:func:`~flask_flows.definitions.definitions_changed`),
so that the change is seen by the very next request.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from .definitions import REFERENCING_OPTIONS, definitions_changed
from .models import Flow, FlowStageBinding, Policy, PolicyBinding, Stage


def _changed(session: Session, obj: Any) -> bool:
    return obj in session.new or obj in session.deleted or session.is_modified(obj)


def _flows_touched(session: Session) -> set[Flow]:
    touched: set[Flow] = set()
    stage_ids: set[int] = set()
    stage_names: set[str] = set()
    policy_ids: set[int] = set()
    binding_ids: set[int] = set()
    # Pending rows built from foreign keys alone (``flow_id=…``) have no relationship to
    # follow before the flush, so their flows are found by id.
    flow_ids: set[int] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if not _changed(session, obj):
            continue
        if isinstance(obj, Flow):
            if obj not in session.new and obj not in session.deleted:
                touched.add(obj)
        elif isinstance(obj, FlowStageBinding):
            if obj.flow is not None:
                touched.add(obj.flow)
            elif obj.flow_id is not None:
                flow_ids.add(obj.flow_id)
        elif isinstance(obj, Stage):
            if obj.id is not None:
                stage_ids.add(obj.id)
            # A renamed stage leaves the flows that named it under its old name too.
            stage_names.update([obj.name, *sa.inspect(obj).attrs.name.history.deleted])
        elif isinstance(obj, Policy) and obj.id is not None:
            policy_ids.add(obj.id)
        elif isinstance(obj, PolicyBinding):
            if obj.flow is not None:
                touched.add(obj.flow)
            elif obj.flow_id is not None:
                flow_ids.add(obj.flow_id)
            elif obj.binding is not None and obj.binding.flow is not None:
                touched.add(obj.binding.flow)
            elif obj.binding_id is not None:
                binding_ids.add(obj.binding_id)
    if stage_names:
        # A stage another stage names in an option (an identification's password_stage)
        # is part of that stage's flows too, created, changed or deleted.
        stage_ids.update(_stages_naming(session, stage_names))
    if stage_ids or policy_ids or binding_ids or flow_ids:
        via_binding = sa.select(FlowStageBinding.flow_id).where(
            sa.or_(
                FlowStageBinding.stage_id.in_(stage_ids),
                FlowStageBinding.id.in_(binding_ids),
                FlowStageBinding.id.in_(
                    sa.select(PolicyBinding.binding_id).where(
                        PolicyBinding.policy_id.in_(policy_ids)
                    )
                ),
            )
        )
        direct = sa.select(PolicyBinding.flow_id).where(PolicyBinding.policy_id.in_(policy_ids))
        touched.update(
            session.scalars(
                sa.select(Flow).where(
                    sa.or_(Flow.id.in_(via_binding), Flow.id.in_(direct), Flow.id.in_(flow_ids))
                )
            )
        )
    return {flow for flow in touched if flow not in session.deleted and flow not in session.new}


def _stages_naming(session: Session, names: set[str]) -> set[int]:
    """Ids of the stages whose options name one of the stages called ``names``."""
    ids: set[int] = set()
    for stage_type, options in REFERENCING_OPTIONS.items():
        rows = session.execute(sa.select(Stage.id, Stage.config).where(Stage.type == stage_type))
        for stage_id, config in rows:
            if any((config or {}).get(option) in names for option in options):
                ids.add(stage_id)
    return ids


_DEFINITION_MODELS = (Flow, FlowStageBinding, Stage, Policy, PolicyBinding)
_CHANGED = "flows_definitions_changed"


@event.listens_for(Session, "before_flush")
def _bump_revisions(session: Session, _context: Any, _instances: Any) -> None:
    if not any(
        isinstance(obj, _DEFINITION_MODELS)
        for obj in chain(session.new, session.dirty, session.deleted)
    ):
        return
    session.info[_CHANGED] = True
    with session.no_autoflush:
        for flow in _flows_touched(session):
            flow.revision = (flow.revision or 1) + 1


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state: ORMExecuteState) -> None:
    """ORM-enabled ``update()``/``delete()``/``insert()`` of definition rows skip the flush
    hook, so they bump no revision; committing one still makes this process's caches
    re-check at once. A cached flow is re-read only when its revision changed, so bulk
    statements that change a flow must bump ``Flow.revision`` themselves."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, _DEFINITION_MODELS):
        state.session.info[_CHANGED] = True


# A rolled-back change keeps the mark until the session's next commit: at worst one
# needless check, never a missed one.
@event.listens_for(Session, "after_commit")
def _announce_changes(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        definitions_changed()
