"""Single-use, expiring links that continue a flow in any browser.

The email stage keeps a copy of its plan, already advanced past itself, in a
:class:`FlowToken` row and mails a link carrying a random token. Only the token's SHA-256
is stored, so the database alone cannot produce a working link, and the token never
enters the session or a log. Opening the link (``GET /flows/-/resume/<token>/``) shows a
page with a "Continue" button; its POST claims the row with a conditional UPDATE, so
exactly one request wins even when two race, and writes the plan into *that* browser's
session: the flow goes on where the link was opened, and a
second browser or device needs nothing from the first.

.. versionadded:: 0.1
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from flask import Response, current_app, make_response, render_template, request, url_for
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from . import layouts, sessions
from .csrf import MSG_CSRF, csrf_valid
from .i18n import N_
from .models import Flow, FlowsModel, utcnow
from .plan import FlowPlan, store_plan
from .tokens import hash_token

if TYPE_CHECKING:
    from .extension import FlowsState

#: Plan context flag set on a plan restored from a link.
IS_RESTORED = "is_restored"

#: Why a link cannot be used (message ids, shown in the reader's language).
MSG_INVALID = N_("This link is invalid or has already been used.")
MSG_EXPIRED = N_("This link has expired. Please start again.")
MSG_NO_ACCOUNT = N_("This account no longer exists.")
MSG_CHANGED = N_("This form was changed since the link was sent. Please start again.")
MSG_GONE = N_("The form this link belongs to no longer exists.")
MSG_SWITCH = N_("This link is not for the account you are signed in to. Nothing was changed.")
#: The field of the Continue form that confirms signing out of another account first.
SWITCH_FIELD = "switch_account"


class FlowToken(FlowsModel):
    """A mailed link: a stored plan to continue, for at most one use before ``expires``."""

    __tablename__ = "flows_flow_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    flow_slug: Mapped[str] = mapped_column(sa.String(64))
    #: ``FlowPlan.to_session()`` of the plan after the stage that sent the link.
    plan: Mapped[dict[str, Any]] = mapped_column()
    user_id: Mapped[str | None] = mapped_column(sa.String(64), index=True, default=None)
    #: SHA-256 of the lowercased address, so sending can be rate limited per address.
    address_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    activate_user: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


def save_token(
    state: FlowsState,
    token: str,
    plan: FlowPlan,
    *,
    user_id: str | None,
    address: str,
    lifetime: timedelta,
    activate_user: bool,
    rehearse: bool = False,
) -> None:
    """Store ``plan`` behind ``token`` (only its hash) and commit; with ``rehearse``, do
    the same database work and roll it back (for a pretended account's mail, whose job
    must cost what a real one's does)."""
    now = utcnow()
    state.db.session.add(
        FlowToken(
            token_hash=hash_token(token),
            flow_slug=plan.flow_slug,
            plan=copy.deepcopy(plan.to_session()),
            user_id=user_id,
            address_hash=hash_address(address),
            activate_user=activate_user,
            created=now,
            expires=now + lifetime,
        )
    )
    if rehearse:
        state.db.session.flush()
        state.db.session.rollback()
        return
    state.db.session.commit()


def opened_since(state: FlowsState, address_hash: str, plan: FlowPlan) -> bool:
    """Whether a link mailed to ``address_hash`` for ``plan`` (its nonce is in the stored
    continuation) has been opened: what lets the tab that waits for it move on. One
    indexed lookup; the nonce is compared here, the same on every database."""
    since = datetime.fromtimestamp(plan.created, UTC).replace(tzinfo=None) - timedelta(seconds=1)
    stored = state.db.session.scalars(
        sa.select(FlowToken.plan).where(
            FlowToken.address_hash == address_hash,
            FlowToken.flow_slug == plan.flow_slug,
            FlowToken.used_at.is_not(None),
            FlowToken.created >= since,
        )
    )
    return any(isinstance(row, dict) and row.get("n") == plan.nonce for row in stored)


def tokens_sent_since(state: FlowsState, address_hash: str, seconds: int) -> int:
    """How many links went to this address in the last ``seconds`` (for rate limiting)."""
    since = utcnow() - timedelta(seconds=seconds)
    return int(
        state.db.session.scalar(
            sa.select(sa.func.count())
            .select_from(FlowToken)
            .where(FlowToken.address_hash == address_hash, FlowToken.created >= since)
        )
        or 0
    )


def hash_address(address: str) -> str:
    """The key the per-address mail limit counts by: one per mailbox, so the spellings of
    one address (case, a ``+tag`` that most providers deliver to the same mailbox) share
    one budget."""
    return hashlib.sha256(mailbox_of(address).encode("utf-8", "surrogatepass")).hexdigest()


def mailbox_of(address: str) -> str:
    """``User+News@Example.com`` → ``user@example.com``."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0] or local}@{domain}"


@dataclass
class _Link:
    """A link that may still be used: its row, flow, stored plan and account."""

    record: FlowToken
    flow: Flow
    plan: FlowPlan
    user: Any | None


def resume(token: str) -> Response:
    """``/flows/-/resume/<token>/``: continue the flow a mailed link stands for.

    GET only shows what the link is for and a "Continue" button; the POST it sends (CSRF
    protected, in the browser that opened the link) claims the link. Mail scanners and
    link previews that fetch every URL in a message therefore cannot spend it.
    """
    from .extension import get_state

    state = get_state()
    link = _usable_link(state, token)
    if isinstance(link, Response):
        return link
    signed_in_as = _other_account(state, link)
    if request.method != "POST":
        return _continue_page(link, token, signed_in_as=signed_in_as)
    if not csrf_valid():
        return _continue_page(link, token, MSG_CSRF, 400, signed_in_as=signed_in_as)
    if signed_in_as is not None:
        # Login CSRF: a link someone else was mailed (their sign-up, their recovery) must
        # never silently swap the account this browser is signed in to. The page said so,
        # and only its explicit "sign out and continue" gets past here; a page opened
        # before this browser signed in did not say so, and is shown again.
        if request.form.get(SWITCH_FIELD) != "yes":
            return _continue_page(link, token, MSG_SWITCH, 409, signed_in_as=signed_in_as)
        sessions.log_out(state)
    return _claim(state, link)


def _other_account(state: FlowsState, link: _Link) -> Any | None:
    """The signed-in user, when the link belongs to a sign-up or another account."""
    current = state.current_user()
    if current is None:
        return None
    store = state.user_store
    if link.user is not None and store.user_id(link.user) == store.user_id(current):
        return None
    return current


def _usable_link(state: FlowsState, token: str) -> _Link | Response:
    """The link behind ``token``, or the page that says why it cannot be used."""
    record = state.db.session.scalar(
        sa.select(FlowToken).where(FlowToken.token_hash == hash_token(token))
    )
    if record is None or record.used_at is not None:
        return _link_error(MSG_INVALID, 404)
    start_url = url_for("flows.execute", slug=record.flow_slug)
    if record.expires <= utcnow():
        return _link_error(MSG_EXPIRED, 410, start_url)
    flow = state.load_flow(record.flow_slug)
    plan = FlowPlan.from_session(record.flow_slug, record.plan)
    if flow is not None and plan is not None and plan.revision != flow.revision:
        flow = state.load_flow(record.flow_slug, recheck=True)  # this process may lag behind
    if flow is None:
        return _link_error(MSG_GONE, 404)
    if plan is None or plan.revision != flow.revision:
        return _link_error(MSG_CHANGED, 409, start_url)
    user = None
    if record.user_id is not None:
        user = state.user_store.get(record.user_id)
        if user is None:
            return _link_error(MSG_NO_ACCOUNT, 410)
    return _Link(record, flow, plan, user)


def _claim(state: FlowsState, link: _Link) -> Response:
    """Spend the link (exactly one request wins a race) and put its plan in this browser."""
    db_session = state.db.session
    claimed = cast(
        "CursorResult[Any]",
        db_session.execute(
            sa.update(FlowToken)
            .where(FlowToken.id == link.record.id, FlowToken.used_at.is_(None))
            .values(used_at=utcnow())
        ),
    )
    if claimed.rowcount != 1:
        db_session.rollback()
        return _link_error(MSG_INVALID, 404)
    if link.record.activate_user and link.user is not None:
        state.user_store.update(link.user, active=True)
    db_session.commit()

    plan = link.plan
    plan.context[IS_RESTORED] = True
    # The link's own expiry was the limit so far; the plan's age counts from now.
    plan.created = time.time()
    store_plan(plan)
    state.log.info(
        "email link %s: flow %s continued in this browser", link.record.id, link.flow.slug
    )
    response = make_response("", 303)
    response.headers["Location"] = url_for("flows.execute", slug=link.flow.slug)
    return _private(response)


def _continue_page(
    link: _Link,
    token: str,
    message: str | None = None,
    code: int = 200,
    *,
    signed_in_as: Any | None = None,
) -> Response:
    html = render_template(
        "flows/link_continue.html",
        layout=layouts.page_layout(),
        flow=link.flow,
        messages=[message] if message else [],
        action_url=url_for("flows.resume", token=token),
        signed_in_as=signed_in_as,
        switch_field=SWITCH_FIELD,
        stay_url=current_app.config["FLOWS_DEFAULT_REDIRECT"],
    )
    return _private(make_response(html, code))


def _link_error(message: str, code: int, start_url: str | None = None) -> Response:
    html = render_template(
        "flows/link_error.html",
        layout=layouts.page_layout(),
        flow=None,
        message=message,
        code=code,
        start_url=start_url,
    )
    return _private(make_response(html, code))


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    # The URL holds the token: keep it out of Referer headers sent from this page.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
