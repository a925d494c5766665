"""What a stage's or policy's options name elsewhere: other stages, flows, policies.

An option that names something that does not exist is accepted by the option checks and
then fails the first visitor who reaches it (a login form posting to a password stage
that is not there, a sign-up link to no flow). As authentik refuses such a definition
when it is saved, a stage type or policy type checks the names in its options in
``check_references(config, where, references)``, which runs when a blueprint is applied
(against the blueprint and the database together: a blueprint may name what it defines)
and in ``flask flows check`` (against the database: something named may have been
deleted since). The checks at run time stay: they fail closed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .models import Flow, Policy, Stage
from .options import ConfigError

if TYPE_CHECKING:
    from .extension import FlowsState


class References:
    """Looks names up among ``stages``, ``policies`` and ``flows`` (those of a blueprint
    being applied, not yet in the database), then in the database."""

    def __init__(
        self,
        state: FlowsState,
        *,
        stages: Mapping[str, Stage] | None = None,
        policies: Collection[str] = (),
        flows: Collection[str] = (),
    ) -> None:
        self.state = state
        self._stages = dict(stages or {})
        self._policies = set(policies)
        self._flows = set(flows)

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name``, or ``None``."""
        if name not in self._stages:
            found = self.state.db.session.scalar(sa.select(Stage).where(Stage.name == name))
            if found is None:
                return None
            self._stages[name] = found
        return self._stages[name]

    def has_policy(self, name: str) -> bool:
        return name in self._policies or self._exists(Policy.name == name)

    def has_flow(self, slug: str) -> bool:
        return slug in self._flows or self._exists(Flow.slug == slug)

    def _exists(self, condition: sa.ColumnElement[bool]) -> bool:
        query = sa.select(sa.literal(True)).where(condition).limit(1)
        return self.state.db.session.scalar(query) is not None


def check_references(
    state: FlowsState, row: Stage | Policy, where: str, references: References
) -> None:
    """Run the ``check_references`` of ``row``'s type over its validated options."""
    if isinstance(row, Stage):
        state.stage_type(row.type).check_references(state.stage_config(row), where, references)
    else:
        state.policy_type(row.type).check_references(state.policy_config(row), where, references)


def require_stage(
    references: References, name: str, where: str, option: str, stage_type: str | None = None
) -> Stage:
    """The stage ``name`` an option names (of ``stage_type``, when given), else a
    ``ConfigError`` naming the option."""
    stage = references.stage(name)
    if stage is None or (stage_type is not None and stage.type != stage_type):
        kind = f"{stage_type} stage" if stage_type else "stage"
        raise ConfigError(f"{where}, field {option!r}: there is no {kind} named {name!r}")
    return stage


def require_flow(references: References, slug: str, where: str, option: str) -> None:
    if not references.has_flow(slug):
        raise ConfigError(f"{where}, field {option!r}: there is no flow with the slug {slug!r}")


def require_policy(references: References, name: str, where: str, option: str) -> None:
    if not references.has_policy(name):
        raise ConfigError(f"{where}, field {option!r}: there is no policy named {name!r}")
