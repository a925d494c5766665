"""Invitation: lets the flow continue only for someone holding a valid invitation link.

The link carries the token as ``?itoken=…``. Opening it (GET) checks the invitation and
shows a "Continue" page, spending nothing: mail scanners and link previews fetch every
URL in a message. Pressing "Continue" (a POST with CSRF and step tokens) accepts it. Only
the invitation's id reaches the plan, never the token, so bind this stage first: later
requests post to the bare flow URL and no longer carry the token. A GET with the token
of another invitation than the running plan's starts the flow afresh, so a newer link is
never ignored for an older plan; the same link opened again resumes where it was.

An invitation given out as a code (on paper) is typed into a prompt field keyed
``token``, as in authentik: reached after that prompt, the stage reads
``prompt_data["token"]`` (and drops it: no token stays in the plan) and accepts a valid
code at once, the prompt's POST having been the person's own action. A code that is not
valid is asked for again on this stage's page, saying why.

A single-use invitation is spent on acceptance by a conditional ``UPDATE … WHERE
used_at IS NULL``: of two browsers pressing "Continue" at once, exactly one gets
through. Its ``fixed_data`` is merged into ``prompt_data``, so a following prompt stage
shows those values (an answer left empty keeps them) and user_write stores them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from wtforms import StringField

from ..grants import MAX_TOKEN_LENGTH, DbSession, Invitation
from ..i18n import N_
from ..models import utcnow
from ..options import Option
from ..plan import FIXED_PROMPT_DATA, PROMPT_DATA
from ..tokens import hash_token, normalise_code
from .base import WORDING, StageForm, StageResult, StageRun, StageType, deny, invalid, ok

if TYPE_CHECKING:
    from flask import Request

    from ..extension import FlowsState

#: Plan context key holding the accepted invitation's id.
INVITATION = "invitation"
#: Plan context key holding the id of the invitation checked on GET, until "Continue".
OFFERED = "invitation_offered"
#: The query parameter of an invitation link.
LINK_ARG = "itoken"
#: The ``prompt_data`` key of a typed invitation code (authentik's), and the form field
#: that asks for it again.
CODE_KEY = "token"
#: Plan context key set while the stage asks for a code (one typed was refused): why,
#: until the page has said it, then ``True``.
ASKING = "invitation_asked"

MSG_MISSING = N_("You need an invitation to continue. Open the link from your invitation.")
MSG_INVALID = N_("This invitation link is not valid. Check that you opened the whole link.")
MSG_EXPIRED = N_("This invitation link has expired. Please ask for a new invitation.")
MSG_USED = N_("This invitation link has already been used. Please ask for a new invitation.")
#: The same refusals for a typed code.
CODE_REFUSALS = {
    MSG_INVALID: N_("This invitation code is not valid. Check it and try again."),
    MSG_EXPIRED: N_("This invitation code has expired. Please ask for a new invitation."),
    MSG_USED: N_("This invitation code has already been used. Please ask for a new invitation."),
}
ENTER_CODE = N_("Enter your invitation code.")


class CodeForm(StageForm):
    """Asks for an invitation code again after a typed one was refused."""

    token = StringField(
        N_("Invitation code"),
        render_kw={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"},
    )


class InvitationStage(StageType):
    name = "invitation"
    template = "flows/stages/invitation.html"
    options = {
        **WORDING,
        "continue_flow_without_invitation": Option(
            bool,
            default=False,
            help="Let the flow go on (without fixed data) when there is no valid invitation.",
        ),
    }

    def opens_another_link(
        self, state: FlowsState, request: Request, context: dict[str, Any]
    ) -> bool:
        """A token of another invitation than the plan's (accepted or waiting) starts the
        flow afresh; the same link opened again resumes the plan where it is, and so does
        a token that names no invitation (a forged link must not discard a visitor's
        progress)."""
        invitation = _invitation_of(state, request.args.get(LINK_ARG, ""))
        return invitation is not None and invitation.id not in (
            context.get(INVITATION),
            context.get(OFFERED),
        )

    def is_interactive(self, run: StageRun) -> bool:
        """Shown ("Continue") while a valid invitation waits to be accepted, or asking for
        a code after a typed one was refused; otherwise the stage acts at once: it
        accepts a valid typed code, refuses, or lets the flow go on without one."""
        if LINK_ARG in run.request.args:
            run.context.pop(ASKING, None)  # a link wins over a code asked for
            found = _check_link(run)
            if isinstance(found, Invitation):
                run.context[OFFERED] = found.id
            else:
                run.context.pop(OFFERED, None)
                run.memo["refusal"] = found
        elif OFFERED not in run.context:
            code = _typed_code(run)
            if code is not None:  # typed now (again, after Back): it is checked afresh
                run.context.pop(ASKING, None)
                found = _check_code(run, code)
                if isinstance(found, Invitation):
                    run.memo["typed"] = found
                else:
                    run.context[ASKING] = found  # the page says why, once
        return OFFERED in run.context or bool(run.context.get(ASKING))

    def form_class(self, run: StageRun) -> type[StageForm]:
        return CodeForm if run.context.get(ASKING) else StageForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        refusal = run.context.get(ASKING)
        if isinstance(form, CodeForm) and isinstance(refusal, str):
            form.token.errors = [refusal]
            run.context[ASKING] = True
        return {}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        if isinstance(form, CodeForm):
            code = (form.token.data or "").strip()
            if not code and run.config["continue_flow_without_invitation"]:
                run.context.pop(ASKING, None)
                return ok()  # left empty where the flow may go on without one
            found = _check_code(run, code) if code else ENTER_CODE
            if not isinstance(found, Invitation):
                form.token.errors = [found]
                return invalid()
            refusal = _accept(run, found)
        elif form is None:
            typed = run.memo.get("typed")
            refusal = _accept(run, typed) if typed else run.memo.get("refusal", MSG_MISSING)
        else:
            refusal = _accept(run, run.state.db.session.get(Invitation, run.context.pop(OFFERED)))
        if refusal is None:
            return ok()
        run.state.log.info("invitation: refused in flow %s: %s", run.flow.slug, refusal)
        if run.config["continue_flow_without_invitation"]:
            return ok()
        return deny(refusal)


def _check_link(run: StageRun) -> Invitation | str:
    """The link's invitation if it may still be accepted in this flow, else why not."""
    token = run.request.args.get(LINK_ARG, "")
    if not token:
        return MSG_MISSING
    invitation = _invitation_of(run.state, token)
    refusal = _refusal(run, invitation)
    if refusal is not None:
        return refusal
    assert invitation is not None
    return invitation


def _invitation_of(state: FlowsState, token: str) -> Invitation | None:
    """The invitation whose token this is, if any: a link's exactly, or a code made to
    be typed (``flask flows invite --code``) whatever its case, spaces and dashes."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    hashes = {hash_token(token), hash_token(normalise_code(token))}
    return state.db.session.scalar(
        sa.select(Invitation).where(Invitation.token_hash.in_(hashes)).limit(1)
    )


def _refusal(run: StageRun, invitation: Invitation | None) -> str | None:
    if invitation is None or invitation.flow_slug not in (None, run.flow.slug):
        return MSG_INVALID
    if invitation.is_expired(utcnow()):
        return MSG_EXPIRED
    if invitation.single_use and invitation.used_at is not None:
        return MSG_USED
    return None


def _typed_code(run: StageRun) -> str | None:
    """A code typed into a prompt (``prompt_data["token"]``), taken out of the plan; a
    field left empty is no code."""
    prompt_data = run.context.get(PROMPT_DATA)
    if not isinstance(prompt_data, dict) or CODE_KEY not in prompt_data:
        return None
    prompt_data = dict(prompt_data)
    code = prompt_data.pop(CODE_KEY)
    run.context[PROMPT_DATA] = prompt_data
    return code.strip() if isinstance(code, str) and code.strip() else None


def _check_code(run: StageRun, code: str) -> Invitation | str:
    """The typed code's invitation if it may still be accepted here, else why not (in
    a code's words)."""
    invitation = _invitation_of(run.state, "".join(code.split()))  # a link's token, typed
    refusal = _refusal(run, invitation)
    if refusal is not None:
        run.state.log.info("invitation: typed code refused in flow %s: %s", run.flow.slug, refusal)
        return CODE_REFUSALS[refusal]
    assert invitation is not None
    return invitation


def _accept(run: StageRun, invitation: Invitation | None) -> str | None:
    """Accept ``invitation`` into the plan; return why not, or ``None``."""
    session = run.state.db.session
    run.context.pop(ASKING, None)
    refusal = _refusal(run, invitation)
    if refusal is not None:
        return refusal
    assert invitation is not None
    if not _spend(session, invitation, utcnow()):
        session.rollback()
        return MSG_USED
    fixed_data = dict(invitation.fixed_data or {})
    invitation_id = invitation.id
    session.commit()
    run.context[INVITATION] = invitation_id
    if fixed_data:
        run.context[PROMPT_DATA] = {**(run.context.get(PROMPT_DATA) or {}), **fixed_data}
        run.context[FIXED_PROMPT_DATA] = sorted(fixed_data)
    return None


def _spend(session: DbSession, invitation: Invitation, now: datetime) -> bool:
    """Record the use; for a single-use invitation only if nobody used it first."""
    update = sa.update(Invitation).where(Invitation.id == invitation.id).values(used_at=now)
    if invitation.single_use:
        update = update.where(Invitation.used_at.is_(None))
    result = session.execute(update.execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]
