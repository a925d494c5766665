"""Passkeys: WebAuthn credentials, and the challenges already answered.

Two new tables and nothing else changes, so the downgrade drops them (and with them
every passkey: users then sign in with their password and other authenticators).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flows_webauthn_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(length=256), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("user_handle", sa.String(length=128), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_used", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    op.create_index(op.f("ix_flows_webauthn_device_user_id"), "flows_webauthn_device", ["user_id"])
    op.create_index(
        op.f("ix_flows_webauthn_device_user_handle"), "flows_webauthn_device", ["user_handle"]
    )
    op.create_table(
        "flows_spent_challenge",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index(op.f("ix_flows_spent_challenge_expires"), "flows_spent_challenge", ["expires"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flows_spent_challenge_expires"), table_name="flows_spent_challenge")
    op.drop_table("flows_spent_challenge")
    op.drop_index(op.f("ix_flows_webauthn_device_user_handle"), table_name="flows_webauthn_device")
    op.drop_index(op.f("ix_flows_webauthn_device_user_id"), table_name="flows_webauthn_device")
    op.drop_table("flows_webauthn_device")
