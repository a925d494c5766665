"""Invitation: lets the flow continue only for someone holding a valid invitation link.

The link carries the token as ``?itoken=…``. The stage acts in the request that opens
the link (it shows nothing), so bind it before any stage that asks the user something:
later requests post to the bare flow URL and no longer carry the token. Only the
invitation's id reaches the plan, never the token.

A single-use invitation is spent the moment the stage accepts it, by a conditional
``UPDATE … WHERE used_at IS NULL``: of two browsers opening the same link at once, exactly
one gets through. Its ``fixed_data`` is merged into ``prompt_data``, so a following
prompt stage shows those values and user_write stores them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..grants import MAX_TOKEN_LENGTH, DbSession, Invitation, hash_token
from ..models import utcnow
from ..options import Option
from ..plan import PROMPT_DATA
from .base import StageForm, StageResult, StageRun, StageType, deny, ok

#: Plan context key holding the accepted invitation's id.
INVITATION = "invitation"
#: The query parameter of an invitation link.
LINK_ARG = "itoken"

MSG_MISSING = "You need an invitation to continue. Open the link from your invitation."
MSG_INVALID = "This invitation link is not valid. Check that you opened the whole link."
MSG_EXPIRED = "This invitation link has expired. Please ask for a new invitation."
MSG_USED = "This invitation link has already been used. Please ask for a new invitation."


class InvitationStage(StageType):
    name = "invitation"
    template = ""
    options = {
        "continue_flow_without_invitation": Option(
            bool,
            default=False,
            help="Let the flow go on (without fixed data) when there is no valid invitation.",
        ),
    }

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        refusal = self._accept(run)
        if refusal is None:
            return ok()
        run.state.log.info("invitation: refused in flow %s: %s", run.flow.slug, refusal)
        if run.config["continue_flow_without_invitation"]:
            return ok()
        return deny(refusal)

    def _accept(self, run: StageRun) -> str | None:
        """Accept the link's invitation into the plan; return why not, or ``None``."""
        token = run.request.args.get(LINK_ARG, "")
        if not token:
            return MSG_MISSING
        if len(token) > MAX_TOKEN_LENGTH:
            return MSG_INVALID
        session = run.state.db.session
        invitation = session.scalar(
            sa.select(Invitation).where(Invitation.token_hash == hash_token(token))
        )
        if invitation is None or invitation.flow_slug not in (None, run.flow.slug):
            return MSG_INVALID
        now = utcnow()
        if invitation.is_expired(now):
            return MSG_EXPIRED
        if not _spend(session, invitation, now):
            session.rollback()
            return MSG_USED
        fixed_data = dict(invitation.fixed_data or {})
        invitation_id = invitation.id
        session.commit()
        run.context[INVITATION] = invitation_id
        if fixed_data:
            run.context[PROMPT_DATA] = {**(run.context.get(PROMPT_DATA) or {}), **fixed_data}
        return None


def _spend(session: DbSession, invitation: Invitation, now: datetime) -> bool:
    """Record the use; for a single-use invitation only if nobody used it first."""
    update = sa.update(Invitation).where(Invitation.id == invitation.id).values(used_at=now)
    if invitation.single_use:
        update = update.where(Invitation.used_at.is_(None))
    result = session.execute(update.execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]
