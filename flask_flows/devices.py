"""Authenticator devices: TOTP apps and sets of single-use recovery codes.

Secrets stay here, in the database, never in the session cookie: a setup stage keeps
only the id of the device it is confirming in the plan.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .models import FlowsModel, utcnow


class TOTPDevice(FlowsModel):
    """An authenticator app sharing a TOTP secret with us (RFC 6238)."""

    __tablename__ = "flows_totp_device"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    name: Mapped[str] = mapped_column(sa.String(128), default="Authenticator app")
    secret: Mapped[str] = mapped_column(sa.String(128))
    digits: Mapped[int] = mapped_column(default=6)
    algorithm: Mapped[str] = mapped_column(sa.String(16), default="sha1")
    period: Mapped[int] = mapped_column(default=30)
    #: False until the user proved the app works by entering a code.
    confirmed: Mapped[bool] = mapped_column(default=False)
    #: Highest time step a code was accepted for; codes of that step or earlier are replays.
    last_step: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(default=None)

    kind = "totp"


class StaticDevice(FlowsModel):
    """A set of recovery codes; each code is a :class:`StaticToken` used at most once."""

    __tablename__ = "flows_static_device"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    name: Mapped[str] = mapped_column(sa.String(128), default="Recovery codes")
    confirmed: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(default=None)

    tokens: Mapped[list[StaticToken]] = relationship(
        back_populates="device", cascade="all, delete-orphan", passive_deletes=True
    )

    kind = "static"


class StaticToken(FlowsModel):
    """One recovery code: a public lookup prefix and an argon2 hash of the secret rest."""

    __tablename__ = "flows_static_token"
    __table_args__ = (sa.UniqueConstraint("device_id", "lookup", name="flows_static_token_lookup"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        sa.ForeignKey("flows_static_device.id", ondelete="CASCADE"), index=True
    )
    lookup: Mapped[str] = mapped_column(sa.String(8))
    secret_hash: Mapped[str] = mapped_column(sa.String(256))

    device: Mapped[StaticDevice] = relationship(back_populates="tokens")
