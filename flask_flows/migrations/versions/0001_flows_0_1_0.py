"""flask-flows 0.1.0: the tables as the first release created them.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flows_authenticated_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("password_failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index(
        op.f("ix_flows_authenticated_session_user_id"),
        "flows_authenticated_session",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "flows_flow",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column(
            "designation",
            sa.Enum(
                "authentication",
                "authorization",
                "invalidation",
                "enrollment",
                "unenrollment",
                "recovery",
                "stage_configuration",
                name="flows_designation",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "authentication",
            sa.Enum(
                "none",
                "require_authenticated",
                "require_unauthenticated",
                "require_superuser",
                name="flows_authentication",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "denied_action",
            sa.Enum(
                "message",
                "continue",
                "message_continue",
                name="flows_denied_action",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "policy_engine_mode",
            sa.Enum(
                "any",
                "all",
                name="flows_flow_policy_mode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("layout", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "flows_flow_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("flow_slug", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("activate_user", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_flows_flow_token_address_hash"), "flows_flow_token", ["address_hash"], unique=False
    )
    op.create_index(
        op.f("ix_flows_flow_token_user_id"), "flows_flow_token", ["user_id"], unique=False
    )
    op.create_table(
        "flows_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "flows_invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("flow_slug", sa.String(length=64), nullable=True),
        sa.Column("expires", sa.DateTime(), nullable=True),
        sa.Column("single_use", sa.Boolean(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("fixed_data", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "flows_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("execution_logging", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "flows_remembered_mfa",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index(
        op.f("ix_flows_remembered_mfa_user_id"), "flows_remembered_mfa", ["user_id"], unique=False
    )
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
    op.create_table(
        "flows_stage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "flows_static_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_used", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_flows_static_device_user_id"), "flows_static_device", ["user_id"], unique=False
    )
    op.create_table(
        "flows_totp_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_used", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_flows_totp_device_user_id"), "flows_totp_device", ["user_id"], unique=False
    )
    op.create_table(
        "flows_user_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=256), nullable=False),
        sa.Column("permissions", sa.Text(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "target", name="flows_user_consent_target"),
    )
    op.create_index(
        op.f("ix_flows_user_consent_user_id"), "flows_user_consent", ["user_id"], unique=False
    )
    op.create_table(
        "flows_binding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("evaluate_on_plan", sa.Boolean(), nullable=False),
        sa.Column("re_evaluate_policies", sa.Boolean(), nullable=False),
        sa.Column(
            "invalid_response_action",
            sa.Enum(
                "retry",
                "restart",
                "restart_with_context",
                name="flows_invalid_response_action",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "policy_engine_mode",
            sa.Enum(
                "any",
                "all",
                name="flows_binding_policy_mode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["flow_id"], ["flows_flow.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_id"], ["flows_stage.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow_id", "order", name="flows_binding_flow_order"),
    )
    op.create_table(
        "flows_group_membership",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["flows_group.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    op.create_index(
        op.f("ix_flows_group_membership_user_id"),
        "flows_group_membership",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "flows_static_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.String(length=8), nullable=False),
        sa.Column("secret_hash", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["flows_static_device.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "lookup", name="flows_static_token_lookup"),
    )
    op.create_index(
        op.f("ix_flows_static_token_device_id"), "flows_static_token", ["device_id"], unique=False
    )
    op.create_table(
        "flows_policy_binding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=True),
        sa.Column("binding_id", sa.Integer(), nullable=True),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("negate", sa.Boolean(), nullable=False),
        sa.Column("failure_result", sa.Boolean(), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(CASE WHEN policy_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN group_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN user_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="flows_policy_binding_one_subject",
        ),
        sa.CheckConstraint(
            "(flow_id IS NULL) != (binding_id IS NULL)", name="flows_policy_binding_one_target"
        ),
        sa.ForeignKeyConstraint(["binding_id"], ["flows_binding.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["flow_id"], ["flows_flow.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["flows_group.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["policy_id"], ["flows_policy.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_flows_policy_binding_binding_id"),
        "flows_policy_binding",
        ["binding_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_flows_policy_binding_flow_id"), "flows_policy_binding", ["flow_id"], unique=False
    )


def downgrade() -> None:
    # Dependent tables first (their indexes go with them).
    op.drop_table("flows_policy_binding")
    op.drop_table("flows_static_token")
    op.drop_table("flows_group_membership")
    op.drop_table("flows_binding")
    op.drop_table("flows_user_consent")
    op.drop_table("flows_totp_device")
    op.drop_table("flows_static_device")
    op.drop_table("flows_stage")
    op.drop_table("flows_reputation_score")
    op.drop_table("flows_remembered_mfa")
    op.drop_table("flows_policy")
    op.drop_table("flows_invitation")
    op.drop_table("flows_group")
    op.drop_table("flows_flow_token")
    op.drop_table("flows_flow")
    op.drop_table("flows_authenticated_session")
