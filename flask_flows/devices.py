"""Authenticator devices: TOTP apps, sets of single-use recovery codes and passkeys.

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


class WebAuthnDevice(FlowsModel):
    """A passkey or security key (a WebAuthn public key credential).

    Only the public key is kept: nothing stored here lets anyone sign in. The sign count
    catches a cloned authenticator (one whose counter goes backwards); passkeys synced
    between devices send 0 every time, which is accepted. ``user_handle`` is the opaque
    id the authenticator keeps for the account (never the user's own id, which may be
    an email address): the same for all of a user's passkeys, so a phone lists one
    account, not one per passkey.
    """

    __tablename__ = "flows_webauthn_device"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    name: Mapped[str] = mapped_column(sa.String(128), default="Passkey")
    #: base64url of the credential id (at most 1023 bytes: 1364 characters).
    credential_id: Mapped[str] = mapped_column(sa.String(1400), unique=True)
    #: The COSE public key the authenticator made.
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    #: How the browser can reach it ("internal", "hybrid", "usb", ...), comma separated.
    transports: Mapped[str] = mapped_column(sa.String(256), default="")
    #: Whether it may be synced to other devices, and whether it is.
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    backed_up: Mapped[bool] = mapped_column(default=False)
    #: The authenticator model's id (all zeros when it does not say).
    aaguid: Mapped[str] = mapped_column(sa.String(36), default="")
    #: base64url of the account's WebAuthn user handle.
    user_handle: Mapped[str] = mapped_column(sa.String(128), index=True)
    #: Always true: a passkey is stored only once its registration was verified.
    confirmed: Mapped[bool] = mapped_column(default=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(default=None)

    kind = "webauthn"


class SpentChallenge(FlowsModel):
    """A WebAuthn challenge that was answered, kept until it expires.

    Challenges travel in the plan, in the session cookie; a copy of an older cookie
    would bring an answered challenge back. Recording each answered one (by its hash)
    makes every challenge single-use on the server too.
    """

    __tablename__ = "flows_spent_challenge"

    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires: Mapped[datetime] = mapped_column(index=True)
