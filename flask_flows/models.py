"""Database models for flows, stages, bindings, policies, groups and authenticated sessions.

The models live in their own SQLAlchemy ``MetaData`` so that the extension never
needs to import the application's ``db``; they are persisted through the app's
Flask-SQLAlchemy session and engine (see :class:`flask_flows.Flows`). Users belong
to the application: rows here refer to them by the string form of their primary key.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC now: SQLite has no time zones, so every timestamp is stored naive in UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class Designation(enum.StrEnum):
    authentication = "authentication"
    authorization = "authorization"
    invalidation = "invalidation"
    enrollment = "enrollment"
    unenrollment = "unenrollment"
    recovery = "recovery"
    stage_configuration = "stage_configuration"


class AuthenticationRequirement(enum.StrEnum):
    none = "none"
    require_authenticated = "require_authenticated"
    require_unauthenticated = "require_unauthenticated"
    require_superuser = "require_superuser"


class DeniedAction(enum.StrEnum):
    message = "message"
    continue_ = "continue"
    message_continue = "message_continue"


class PolicyEngineMode(enum.StrEnum):
    any = "any"
    all = "all"


class InvalidResponseAction(enum.StrEnum):
    retry = "retry"
    restart = "restart"
    restart_with_context = "restart_with_context"


def _choice(enum_type: type[enum.Enum], name: str) -> sa.Enum:
    # Stored as plain strings with a CHECK constraint: portable and readable in dumps.
    return sa.Enum(
        enum_type,
        name=name,
        native_enum=False,
        create_constraint=True,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
        length=32,
    )


class FlowsModel(DeclarativeBase):
    """Declarative base of every flask-flows table (its own metadata, app's engine)."""

    type_annotation_map = {dict[str, Any]: sa.JSON}


class Flow(FlowsModel):
    """A named sequence of stages with one designation."""

    __tablename__ = "flows_flow"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    title: Mapped[str] = mapped_column(sa.String(256), default="")
    designation: Mapped[Designation] = mapped_column(_choice(Designation, "flows_designation"))
    authentication: Mapped[AuthenticationRequirement] = mapped_column(
        _choice(AuthenticationRequirement, "flows_authentication"),
        default=AuthenticationRequirement.none,
    )
    denied_action: Mapped[DeniedAction] = mapped_column(
        _choice(DeniedAction, "flows_denied_action"), default=DeniedAction.message_continue
    )
    policy_engine_mode: Mapped[PolicyEngineMode] = mapped_column(
        _choice(PolicyEngineMode, "flows_flow_policy_mode"), default=PolicyEngineMode.any
    )
    layout: Mapped[str] = mapped_column(sa.String(32), default="stacked")
    # Bumped whenever the flow, one of its bindings, their stages or policies change, so
    # running plans and cached plans built from an older definition are recognised as stale.
    revision: Mapped[int] = mapped_column(default=1)

    bindings: Mapped[list[FlowStageBinding]] = relationship(
        back_populates="flow",
        order_by="FlowStageBinding.order",
        cascade="all, delete-orphan",
    )
    policy_bindings: Mapped[list[PolicyBinding]] = relationship(
        back_populates="flow",
        order_by="PolicyBinding.order",
        cascade="all, delete-orphan",
        foreign_keys="PolicyBinding.flow_id",
    )

    def __repr__(self) -> str:
        return f"<Flow {self.slug!r} ({self.designation.value})>"


class Stage(FlowsModel):
    """One configured instance of a stage type; may be bound into many flows."""

    __tablename__ = "flows_stage"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    type: Mapped[str] = mapped_column(sa.String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    bindings: Mapped[list[FlowStageBinding]] = relationship(back_populates="stage")

    def __repr__(self) -> str:
        return f"<Stage {self.name!r} ({self.type})>"


class FlowStageBinding(FlowsModel):
    """Places a stage in a flow at an order, with the policies that decide if it runs."""

    __tablename__ = "flows_binding"
    __table_args__ = (sa.UniqueConstraint("flow_id", "order", name="flows_binding_flow_order"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(sa.ForeignKey("flows_flow.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(sa.ForeignKey("flows_stage.id", ondelete="RESTRICT"))
    order: Mapped[int] = mapped_column(default=0)
    evaluate_on_plan: Mapped[bool] = mapped_column(default=False)
    re_evaluate_policies: Mapped[bool] = mapped_column(default=True)
    invalid_response_action: Mapped[InvalidResponseAction] = mapped_column(
        _choice(InvalidResponseAction, "flows_invalid_response_action"),
        default=InvalidResponseAction.retry,
    )
    policy_engine_mode: Mapped[PolicyEngineMode] = mapped_column(
        _choice(PolicyEngineMode, "flows_binding_policy_mode"), default=PolicyEngineMode.any
    )

    flow: Mapped[Flow] = relationship(back_populates="bindings")
    stage: Mapped[Stage] = relationship(back_populates="bindings", lazy="joined")
    policy_bindings: Mapped[list[PolicyBinding]] = relationship(
        back_populates="binding",
        order_by="PolicyBinding.order",
        cascade="all, delete-orphan",
        foreign_keys="PolicyBinding.binding_id",
    )


class Policy(FlowsModel):
    """A typed, configured yes/no decision; bound to flows or bindings by PolicyBinding."""

    __tablename__ = "flows_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    type: Mapped[str] = mapped_column(sa.String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    execution_logging: Mapped[bool] = mapped_column(default=False)

    def __repr__(self) -> str:
        return f"<Policy {self.name!r} ({self.type})>"


class Group(FlowsModel):
    """A named set of users, used by group policy bindings and group-membership policies."""

    __tablename__ = "flows_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)


class GroupMembership(FlowsModel):
    __tablename__ = "flows_group_membership"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("flows_group.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class PolicyBinding(FlowsModel):
    """Attaches exactly one of a policy, a group or a user to a flow or to a binding."""

    __tablename__ = "flows_policy_binding"
    __table_args__ = (
        sa.CheckConstraint(
            "(flow_id IS NULL) != (binding_id IS NULL)", name="flows_policy_binding_one_target"
        ),
        sa.CheckConstraint(
            "(CASE WHEN policy_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN group_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN user_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="flows_policy_binding_one_subject",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("flows_flow.id", ondelete="CASCADE"), index=True
    )
    binding_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("flows_binding.id", ondelete="CASCADE"), index=True
    )
    policy_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("flows_policy.id", ondelete="CASCADE")
    )
    group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("flows_group.id", ondelete="CASCADE")
    )
    user_id: Mapped[str | None] = mapped_column(sa.String(64))
    order: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    negate: Mapped[bool] = mapped_column(default=False)
    failure_result: Mapped[bool] = mapped_column(default=False)
    timeout: Mapped[int] = mapped_column(default=30)

    flow: Mapped[Flow | None] = relationship(
        back_populates="policy_bindings", foreign_keys=[flow_id]
    )
    binding: Mapped[FlowStageBinding | None] = relationship(
        back_populates="policy_bindings", foreign_keys=[binding_id]
    )
    policy: Mapped[Policy | None] = relationship(lazy="joined")
    group: Mapped[Group | None] = relationship(lazy="joined")


class AuthenticatedSession(FlowsModel):
    """Server-side record of one login, so logout and "end other sessions" really end it."""

    __tablename__ = "flows_authenticated_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    ip_address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(512), default="")
    #: Wrong passwords given on the settings page during this login. Kept here, not in
    #: the cookie: a copy of the cookie from before the guesses must not reset it.
    password_failures: Mapped[int] = mapped_column(default=0)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or utcnow())


class RememberedMfa(FlowsModel):
    """A browser's passed second factor (``authenticator_validate``'s
    ``last_auth_threshold``), remembered on the server: the ``flows_mfa`` cookie names a
    row by a random key, so logging out, a new password or a changed authenticator can
    revoke it, which a signed cookie alone could not (a copy of it kept working)."""

    __tablename__ = "flows_remembered_mfa"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    expires: Mapped[datetime] = mapped_column()
