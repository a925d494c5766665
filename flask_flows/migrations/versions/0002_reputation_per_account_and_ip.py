"""Reputation per (account, IP) pair, and the reputation policy read as in authentik.

``flows_reputation`` replaces ``flows_reputation_score``. The old table held net counts
of the last day's failures per IP and per typed name; they do not divide into the new
(account, IP) pairs, and they expire within a day (``FLOWS_REPUTATION_EXPIRY``) anyway,
so the new table starts empty, as if that day had passed.

Stored ``reputation`` policies are carried over to the new reading: the policy used to
pass while the scores were *above* the threshold and had to be bound negated; now it
passes when the score is at or below it (a bad reputation matches), so every binding of
such a policy flips ``negate`` and the flow decides as before. ``check_identifier`` is
now ``check_username``. A policy with both checks off checked nothing (it always
passed); flask-flows now refuses that configuration, so it is named in a warning for
its owner to turn a check on.

The shipped login flow loses its IP-wide deny stage (``default-authentication-throttle``
and its two policies): every guess is now judged on the server per account and IP, and
that stage locked out everyone behind an attacker's IP. Only flask-flows' own objects,
by their shipped names, are removed; ``flask flows init`` keeps flows an app changed, so
without this an upgraded database would keep the stage. The downgrade does not put it
back.

Revision ID: 0002
Revises: 0001
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger("flask_flows.migrations")

_policy = sa.table(
    "flows_policy",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("type", sa.String),
    sa.column("config", sa.JSON),
)
_policy_binding = sa.table(
    "flows_policy_binding", sa.column("policy_id", sa.Integer), sa.column("negate", sa.Boolean)
)


def upgrade() -> None:
    op.create_table(
        "flows_reputation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.Float(), nullable=False),
        sa.Column("familiar_until", sa.Float(), nullable=False),
        sa.Column("changed", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier", "ip", name="flows_reputation_identifier_ip"),
    )
    op.create_index("flows_reputation_ip", "flows_reputation", ["ip"], unique=False)
    op.drop_table("flows_reputation_score")
    _carry_policies("check_identifier", "check_username")
    _drop_shipped_throttle()
    for name, config in _reputation_policies():
        if not config.get("check_ip", True) and not config.get("check_username", True):
            logger.warning(
                "the reputation policy %r checks nothing (check_ip and check_username are"
                " both off), which flask-flows now refuses: turn one of them on",
                name,
            )


def downgrade() -> None:
    op.create_table(
        "flows_reputation_score",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "key", name="flows_reputation_kind_key"),
    )
    op.drop_table("flows_reputation")
    _carry_policies("check_username", "check_identifier")


_flow = sa.table(
    "flows_flow",
    sa.column("id", sa.Integer),
    sa.column("slug", sa.String),
    sa.column("revision", sa.Integer),
)
_stage = sa.table("flows_stage", sa.column("id", sa.Integer), sa.column("name", sa.String))
_binding = sa.table(
    "flows_binding",
    sa.column("id", sa.Integer),
    sa.column("flow_id", sa.Integer),
    sa.column("stage_id", sa.Integer),
)
_subject_binding = sa.table(
    "flows_policy_binding",
    sa.column("binding_id", sa.Integer),
    sa.column("policy_id", sa.Integer),
)
LOGIN_FLOW = "default-authentication-flow"
THROTTLE_STAGE = "default-authentication-throttle"
THROTTLE_POLICIES = (
    "default-authentication-reputation-ip",
    "default-authentication-reputation-identifier",
)


def _drop_shipped_throttle() -> None:
    """Remove 0.1.0's deny stage from the shipped login flow (moving its revision, so
    plans restart cleanly), then the stage and its policies where nothing else uses
    them: a flow of the app's own that binds them keeps them. Rows are deleted in order
    by hand, as foreign keys (and so cascades) are off while a migration runs on SQLite."""
    bind = op.get_bind()
    stage_id = bind.execute(sa.select(_stage.c.id).where(_stage.c.name == THROTTLE_STAGE)).scalar()
    login = bind.execute(sa.select(_flow.c.id).where(_flow.c.slug == LOGIN_FLOW)).scalar()
    if stage_id is None:
        return
    ours = sa.and_(_binding.c.stage_id == stage_id, _binding.c.flow_id == login)
    ids = bind.execute(sa.select(_binding.c.id).where(ours)).scalars().all()
    if ids:
        bind.execute(_subject_binding.delete().where(_subject_binding.c.binding_id.in_(ids)))
        bind.execute(_binding.delete().where(_binding.c.id.in_(ids)))
        bind.execute(
            _flow.update().where(_flow.c.id == login).values(revision=_flow.c.revision + 1)
        )
    if not _count(_binding, _binding.c.stage_id == stage_id):
        bind.execute(_stage.delete().where(_stage.c.id == stage_id))
    policies = bind.execute(sa.select(_policy.c.id).where(_policy.c.name.in_(THROTTLE_POLICIES)))
    for policy_id in policies.scalars().all():
        if not _count(_subject_binding, _subject_binding.c.policy_id == policy_id):
            bind.execute(_policy.delete().where(_policy.c.id == policy_id))


def _count(table: sa.TableClause, where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(where)
    return int(op.get_bind().execute(query).scalar_one())


def _reputation_policies() -> list[tuple[str, dict]]:
    rows = op.get_bind().execute(
        sa.select(_policy.c.name, _policy.c.config).where(_policy.c.type == "reputation")
    )
    return [(name, dict(config or {})) for name, config in rows]


def _carry_policies(old_option: str, new_option: str) -> None:
    """Rename the option in every reputation policy and flip the negation of each of
    their bindings: the reading is the opposite on either side of this revision."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_policy.c.id, _policy.c.config).where(_policy.c.type == "reputation")
    ).all()
    for policy_id, config in rows:
        config = dict(config or {})
        if old_option in config:
            config[new_option] = config.pop(old_option)
        bind.execute(_policy.update().where(_policy.c.id == policy_id).values(config=config))
    if rows:
        bind.execute(
            _policy_binding.update()
            .where(_policy_binding.c.policy_id.in_([row.id for row in rows]))
            .values(negate=sa.not_(_policy_binding.c.negate))
        )
