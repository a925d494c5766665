"""What a user has been granted outside a flow's own steps: invitations and consents.

An :class:`Invitation` lets its holder through an invitation stage. Only the SHA-256 of
its token is stored, so a leaked database does not yield working links; the token exists
once, in the link handed to the invitee. A :class:`UserConsent` remembers that a user
agreed to let a target (usually an application) act for them, so a consent stage need
not ask again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session

from .models import FlowsModel, utcnow
from .tokens import hash_token, new_code, new_token, normalise_code

#: A plain session or Flask-SQLAlchemy's scoped ``db.session``.
DbSession = Session | scoped_session[Any]

#: Longer values in ``?itoken=`` are not tokens we made; they are refused unhashed.
MAX_TOKEN_LENGTH = 128


class Invitation(FlowsModel):
    """A link that lets its holder run a flow guarded by an invitation stage."""

    __tablename__ = "flows_invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: The flow the invitation is for; ``None`` accepts it in any flow with an invitation stage.
    flow_slug: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    single_use: Mapped[bool] = mapped_column(default=True)
    #: When a single-use invitation was accepted; the last use of a multi-use one.
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Merged into the plan's ``prompt_data``: prompts show it, user_write writes it.
    fixed_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or utcnow())


class UserConsent(FlowsModel):
    """A user's standing consent to a target; ``expires=None`` means until revoked."""

    __tablename__ = "flows_user_consent"
    __table_args__ = (sa.UniqueConstraint("user_id", "target", name="flows_user_consent_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str] = mapped_column(sa.String(256))
    #: The permissions consented to, one per line (empty when the stage asked for none).
    permissions: Mapped[str] = mapped_column(sa.Text, default="")
    expires: Mapped[datetime | None] = mapped_column(default=None)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or utcnow())

    def covers(self, permissions: list[str]) -> bool:
        """True when every permission asked for now was part of what was consented to."""
        return set(permissions) <= set(self.permissions.splitlines())


def create_invitation(
    session: DbSession,
    *,
    flow_slug: str | None,
    expires_in: timedelta | None = timedelta(hours=72),
    fixed_data: dict[str, Any] | None = None,
    single_use: bool = True,
    created_by: str | None = None,
    code: bool = False,
) -> tuple[Invitation, str]:
    """Add (not commit) an invitation; return it and its token, which is not stored anywhere.

    The token goes into the link as ``?itoken=``; lose it and the invitation cannot be used.
    With ``code`` it is a code to give out on paper and type into a prompt (20 letters and
    digits grouped by four, 100 bits, read back whatever the case, spaces and dashes).
    """
    token = new_code() if code else new_token()
    invitation = Invitation(
        token_hash=hash_token(normalise_code(token) if code else token),
        flow_slug=flow_slug,
        expires=utcnow() + expires_in if expires_in is not None else None,
        single_use=single_use,
        fixed_data=dict(fixed_data or {}),
        created_by=created_by,
    )
    session.add(invitation)
    session.flush()
    return invitation, token
